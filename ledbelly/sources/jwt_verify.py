"""Verifying Canvas's signed Live Events: RS256 JWTs checked against Instructure's JWKS.

Canvas signs each HTTPS delivery ("Sign Payload") with a key from a published JWKS that
holds the previous, current and next keys and is rotated monthly; the JWT header's
``kid`` names the key. Only RS256 is accepted, whatever the token's header claims, so
``alg: none`` and an HMAC token keyed with the (public) RSA key are refused before any
key is used.

The key set is cached. A token whose ``kid`` is not in the cache triggers one refetch,
and at most one such refetch per ``refresh_interval``: otherwise anyone could make the
daemon fetch the JWKS once per request by sending made-up key ids. A JWKS that cannot be
fetched is ``KeysUnavailable`` (the sender should retry: 503), not a bad token (401).

The token itself is checked here rather than by ``jwt.decode``: PyJWT (>= 2.14) checks
each base64url character in a Python loop, ~150 µs of a 2.6 KB event's ~190 µs. The
same rules run here in C (a regular expression, ``base64``, a canonical re-encoding);
the signature is ``cryptography``'s RSA PKCS#1 v1.5 SHA-256 check, the call PyJWT's
``RSAAlgorithm.verify`` makes; the claims are checked as PyJWT checks them. PyJWT still
loads the JWKS keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

log = logging.getLogger("ledbelly.https")

ALGORITHM = "RS256"
MAX_JWKS_BYTES = 256 * 1024
FAILED_FETCH_PAUSE = 5.0  # after a failed fetch, do not try again for this long

Fetch = Callable[[str, float], bytes]


class VerificationError(Exception):
    """A token that is not Canvas's: refused with 401. ``reason`` is a metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class KeysUnavailable(Exception):
    """The JWKS could not be fetched, so no verdict: the sender should retry."""


class KeyNotCached(Exception):
    """``verify(may_fetch=False)`` met a kid whose key would need a JWKS fetch."""


# A base64url segment as PyJWT accepts it: the alphabet, then at most two "=" of padding.
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*(={0,2})")


def b64url_segment(segment: bytes, name: str) -> bytes:
    """One segment's bytes, by PyJWT's rules (>= 2.14) at C speed: only the base64url
    alphabet, padding only to a multiple of 4, no impossible length, and canonical (no
    stray bits in the last character), so one token has one spelling."""
    m = _SEGMENT.fullmatch(segment)
    if m is None or (m.group(1) and len(segment) % 4):
        raise VerificationError("malformed", f"not a JWT: bad base64url in the {name}")
    stripped = segment[: len(segment) - len(m.group(1))]
    if len(stripped) % 4 == 1:
        raise VerificationError("malformed", f"not a JWT: bad base64url in the {name}")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (ValueError, binascii.Error):
        raise VerificationError("malformed", f"not a JWT: bad base64url in the {name}") from None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise VerificationError("malformed", f"not a JWT: bad base64url in the {name}")
    return decoded


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:  # orjson refuses integers past 64 bits; json does not
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise VerificationError("malformed", f"not a JWT: bad {name}: {exc}") from None
    if not isinstance(value, dict):
        raise VerificationError("malformed", f"not a JWT: the {name} is not a JSON object")
    return value


def split_token(token: str | bytes) -> tuple[bytes, dict[str, Any], bytes, bytes]:
    """A compact JWS as (signing input, header, payload segment, signature), decoded
    but not verified; the payload is decoded only once the signature holds."""
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    parts = raw.split(b".")
    if len(parts) != 3 or not parts[0]:
        raise VerificationError("malformed", "not a JWT: not three base64url segments")
    header = _json_object(b64url_segment(parts[0], "header"), "header")
    signature = b64url_segment(parts[2], "signature")
    return raw[: len(raw) - len(parts[2]) - 1], header, parts[1], signature


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWT, decoded without verifying anything."""
    return split_token(token)[1]


def fetch_url(url: str, timeout: float) -> bytes:
    """GET ``url``, refusing bodies over ``MAX_JWKS_BYTES``."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "ledbelly"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        data: bytes = resp.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    return data


def parse_jwks(data: bytes) -> dict[str, jwt.PyJWK]:
    """The usable RSA signing keys of a JWKS document, by kid; others are skipped."""
    doc = json.loads(data)
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise ValueError("the JWKS has no keys list")
    out: dict[str, jwt.PyJWK] = {}
    for item in keys:
        if not isinstance(item, dict) or not isinstance(item.get("kid"), str):
            continue
        if item.get("kty") != "RSA" or item.get("use", "sig") != "sig":
            continue
        if item.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            out[item["kid"]] = jwt.PyJWK(item, algorithm=ALGORITHM)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError, TypeError) as exc:
            log.warning("JWKS key %r is unusable and skipped: %s", item["kid"], exc)
    return out


class JwksCache:
    """Signing keys by kid, fetched on first use, refreshed when old or on an unknown kid."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        refresh_interval: float = 60.0,
        max_age: float = 3600.0,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[bool], None] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self._fetch = fetch
        self._on_fetch = on_fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._loaded_at = 0.0
        self._last_refetch = float("-inf")  # the last refetch an unknown kid caused
        self._failed_at = float("-inf")
        self.fetches = 0

    def cached(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid`` if it is in hand and fresh; never fetches, never waits
        on a fetch in progress (so the event loop may call it)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._keys is None or self._clock() - self._loaded_at >= self.max_age:
                return None
            return self._keys.get(kid)
        finally:
            self._lock.release()

    def key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; raises ``VerificationError`` or ``KeysUnavailable``."""
        with self._lock:
            now = self._clock()
            fresh = False
            if self._keys is None or now - self._loaded_at >= self.max_age:
                fresh = self._load(now)
            assert self._keys is not None
            if kid in self._keys:
                return self._keys[kid]
            if not fresh and now - self._last_refetch >= self.refresh_interval:
                self._last_refetch = now
                if not self._load(now):
                    raise KeysUnavailable(f"cannot refetch the JWKS for key {kid!r}")
                if kid in self._keys:
                    log.info("JWKS refetched for a new key id; %d keys", len(self._keys))
                    return self._keys[kid]
            raise VerificationError("unknown_kid", f"no key {kid!r} in the JWKS")

    def _load(self, now: float) -> bool:
        """Fetch the key set; a failure keeps the keys in hand, if any, and returns False."""
        if now - self._failed_at < FAILED_FETCH_PAUSE and self._keys is None:
            raise KeysUnavailable("the JWKS could not be fetched a moment ago")
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch(self.url, self.timeout))
            if not keys:
                raise ValueError("the JWKS holds no RSA signing key")
        except Exception as exc:  # network, HTTP status, JSON: all mean "no keys now"
            self._failed_at = now
            if self._on_fetch:
                self._on_fetch(False)
            if self._keys is None:
                raise KeysUnavailable(f"cannot fetch the JWKS from {self.url}: {exc}") from exc
            log.warning(
                "cannot refresh the JWKS from %s (keeping %d keys): %s",
                self.url,
                len(self._keys),
                exc,
            )
            self._loaded_at = now  # try again after max_age, not on every request
            return False
        self._keys = keys
        self._loaded_at = now
        if self._on_fetch:
            self._on_fetch(True)
        return True


class JwtVerifier:
    """Checks a compact JWT: RS256 only, a known kid, the signature, exp/nbf, the issuer."""

    def __init__(self, keys: JwksCache, issuer: str | None = None, leeway: float = 60.0) -> None:
        self.keys = keys
        self.issuer = issuer
        self.leeway = leeway

    def verify(self, token: str | bytes, *, may_fetch: bool = True) -> dict[str, Any]:
        """The token's claims; raises ``VerificationError`` or ``KeysUnavailable``.

        With ``may_fetch=False`` a key not in hand raises ``KeyNotCached`` instead of
        fetching the JWKS: the caller then verifies again where it may block."""
        signing_input, header, payload, signature = split_token(token)
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise VerificationError("algorithm", f"algorithm {alg!r} is not {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise VerificationError("no_kid", "the JWT header has no kid")
        if "crit" in header or header.get("b64", True) is False:  # RFC 7515 4.1.11, 7797
            raise VerificationError("invalid", "invalid token: critical header extensions")
        if may_fetch:
            key = self.keys.key(kid)
        elif (cached := self.keys.cached(kid)) is not None:
            key = cached
        else:
            raise KeyNotCached(kid)
        try:
            public_key(key).verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise VerificationError("signature", "the signature does not verify") from None
        try:
            claims = _json_object(b64url_segment(payload, "payload"), "payload")
        except VerificationError as exc:
            raise VerificationError("invalid", f"invalid token: {exc.detail}") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """PyJWT's claim checks (``jwt.decode`` with ``verify_aud`` off), in its order."""
        if self.issuer and claims.get("iss") is None:
            raise VerificationError("issuer", 'Token is missing the "iss" claim')
        now = time.time()
        iat, nbf, exp = (_numeric(claims, name) for name in ("iat", "nbf", "exp"))
        if iat is not None and iat > now + self.leeway:
            raise VerificationError("not_yet_valid", "the token is not valid yet (iat)")
        if nbf is not None and nbf > now + self.leeway:
            raise VerificationError("not_yet_valid", "the token is not valid yet")
        if exp is not None and exp <= now - self.leeway:
            raise VerificationError("expired", "the token has expired")
        if self.issuer and claims["iss"] != self.issuer:
            raise VerificationError("issuer", "Invalid issuer")
        for name in ("sub", "jti"):
            if name in claims and not isinstance(claims[name], str):
                raise VerificationError("invalid", f"invalid token: {name} must be a string")


def _numeric(claims: dict[str, Any], name: str) -> int | None:
    """A time claim as PyJWT reads it (``int()`` of the value), None when absent."""
    if name not in claims:
        return None
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError):
        raise VerificationError("invalid", f"invalid token: {name} must be a number") from None


def public_key(key: jwt.PyJWK) -> rsa.RSAPublicKey:
    """The RSA public key a JWKS entry holds (its public half, had it private parts)."""
    obj = key.key
    if isinstance(obj, rsa.RSAPrivateKey):
        return obj.public_key()
    if not isinstance(obj, rsa.RSAPublicKey):
        raise VerificationError("invalid", "invalid token: the key is not an RSA key")
    return obj
