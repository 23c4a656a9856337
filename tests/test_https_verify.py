"""The intake's own JWT check against PyJWT's: the same tokens accepted, the same refused.

``JwtVerifier`` checks tokens itself (PyJWT's per-character base64url loop cost more than
the RSA check), so every rule PyJWT enforces is tried here on both, token by token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

from ledbelly.sources.jwt_verify import (
    JwksCache,
    JwtVerifier,
    VerificationError,
    b64url_segment,
)

ISSUER = "https://live-events.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: dict[str, Any], claims: Any, raw_claims: bytes | None = None) -> str:
    """A compact JWS signed with ``KEY`` (RS256) whatever the header says."""
    body = raw_claims if raw_claims is not None else json.dumps(claims).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}"
    signature = KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    # A day ahead: the tokens are made when the suite is collected, and a full run that
    # reaches this file many minutes later must still find them good.
    return {
        "iss": ISSUER,
        "iat": now,
        "exp": now + 86_400,
        "metadata": {"event_name": "x"},
        **extra,
    }


HEADER = {"alg": "RS256", "kid": "k1", "typ": "JWT"}


def with_segment(token: str, index: int, change: Callable[[str], str]) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def other_last_char(segment: str) -> str:
    """The same bytes spelled differently: a last character whose unused bits are set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[last | (3 if len(segment) % 4 == 3 else 15)]


def pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


GOOD = signed(HEADER, claims())
TOKENS: dict[str, str] = {
    "good": GOOD,
    "good, a padded signature": with_segment(GOOD, 2, pad),
    "good, a claim past 64 bits": signed(HEADER, claims(big=2**70)),
    "good, exp as a numeric string": signed(HEADER, claims(exp=str(int(time.time()) + 86_400))),
    "tampered claims": with_segment(GOOD, 1, lambda s: b64(b'{"iss": "x"}')),
    "a non-canonical signature": with_segment(GOOD, 2, other_last_char),
    "a non-canonical header": with_segment(GOOD, 0, other_last_char),
    "too much padding": with_segment(GOOD, 2, lambda s: pad(s) + "===="),
    "padding out of place": with_segment(GOOD, 2, lambda s: s + "="),
    "standard base64 characters": with_segment(GOOD, 2, lambda s: s[:-2] + "+/"),
    "junk in a segment": with_segment(GOOD, 1, lambda s: "!!!!" + s),
    "an impossible length": with_segment(GOOD, 2, lambda s: s + "AAA"),
    "four segments": GOOD + ".AAAA",
    "two segments": GOOD.rsplit(".", 1)[0],
    "alg none": signed({**HEADER, "alg": "none"}, claims()),
    "HS256": signed({**HEADER, "alg": "HS256"}, claims()),
    "a critical extension": signed({**HEADER, "crit": ["exp"], "exp": 1}, claims()),
    "b64 false": signed({**HEADER, "b64": False, "crit": ["b64"]}, claims()),
    "a header that is a list": f"{b64(b'[1]')}.{GOOD.split('.', 1)[1]}",
    "expired": signed(HEADER, claims(exp=int(time.time()) - 3600)),
    "exp not a number": signed(HEADER, claims(exp="soon")),
    "not valid yet": signed(HEADER, claims(nbf=int(time.time()) + 3600)),
    "issued in the future": signed(HEADER, claims(iat=int(time.time()) + 3600)),
    "iat not a number": signed(HEADER, claims(iat="today")),
    "another issuer": signed(HEADER, claims(iss="https://evil.test")),
    "no issuer": signed(HEADER, {k: v for k, v in claims().items() if k != "iss"}),
    "sub not a string": signed(HEADER, claims(sub=42)),
    "jti not a string": signed(HEADER, claims(jti=42)),
    "claims that are a list": signed(HEADER, None, raw_claims=b"[1, 2]"),
    "claims that are not JSON": signed(HEADER, None, raw_claims=b"{not json"),
}


def ours() -> JwtVerifier:
    jwk = {**RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "k1", "alg": "RS256"}
    document = json.dumps({"keys": [jwk]}).encode()
    return JwtVerifier(JwksCache("http://jwks.invalid", fetch=lambda *_: document), ISSUER)


def pyjwt_accepts(token: str) -> bool:
    try:
        jwt.decode(
            token,
            key=KEY.public_key(),
            algorithms=["RS256"],
            issuer=ISSUER,
            leeway=60,
            options={"verify_aud": False, "require": ["iss"]},
        )
    except jwt.InvalidTokenError:
        return False
    return True


@pytest.mark.parametrize("what", list(TOKENS))
def test_the_same_tokens_pass_as_with_pyjwt(what: str) -> None:
    token = TOKENS[what]
    try:
        ours().verify(token)
        accepted = True
    except VerificationError:
        accepted = False
    assert accepted == pyjwt_accepts(token) == what.startswith("good"), what


def test_refusals_say_why() -> None:
    verifier = ours()
    reasons = {}
    for what in ("tampered claims", "alg none", "HS256", "expired", "another issuer"):
        with pytest.raises(VerificationError) as caught:
            verifier.verify(TOKENS[what])
        reasons[what] = caught.value.reason
    assert reasons == {
        "tampered claims": "signature",
        "alg none": "algorithm",
        "HS256": "algorithm",
        "expired": "expired",
        "another issuer": "issuer",
    }


def test_claims_come_back_whole_and_bytes_are_accepted() -> None:
    token = signed(HEADER, claims(big=2**70, text="é ü"))
    got = ours().verify(token.encode("ascii"))
    assert got["big"] == 2**70 and got["text"] == "é ü" and got["iss"] == ISSUER


def test_a_segment_decodes_as_base64url_does() -> None:
    for size in range(0, 40):
        data = bytes(range(size))
        assert b64url_segment(b64(data).encode(), "x") == data
        assert b64url_segment(pad(b64(data)).encode(), "x") == data
