"""systemd's sd_notify protocol, spoken directly so ledbelly needs no libsystemd.

Under ``Type=notify`` systemd waits for ``READY=1`` before it calls the unit started, and
with ``WatchdogSec=`` it restarts a daemon that stops sending ``WATCHDOG=1``. The protocol
is one datagram of ``KEY=value`` lines to the AF_UNIX socket named in ``NOTIFY_SOCKET``.
Outside systemd that variable is unset and every method here does nothing, so callers
never need to ask whether they run under systemd. Sending never raises: a lost
notification must not take the daemon down (systemd will notice on its own).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT = 1.0  # seconds; a full receive queue must not stall the caller for long


def socket_address(value: str) -> str | None:
    """The address to send to, or None when NOTIFY_SOCKET names nothing we can use.

    ``@name`` is a Linux abstract socket, whose real name starts with a NUL byte. Other
    forms systemd knows (``vsock:``) are not supported and turn notification off.
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Notifier:
    """Sends service state to systemd; a no-op when there is no notify socket."""

    def __init__(
        self,
        address: str | None,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self.watchdog_pid = watchdog_pid

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.debug("NOTIFY_SOCKET=%r is not a path or abstract socket; not notifying", raw)
        return cls(
            address,
            watchdog_usec=_parse_int(env.get("WATCHDOG_USEC")),
            watchdog_pid=_parse_int(env.get("WATCHDOG_PID")),
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True if it was sent, never raises."""
        if self.address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(SEND_TIMEOUT)
                sock.sendto(payload, self.address)
        except OSError as exc:
            log.debug("sd_notify %r to %r failed: %s", assignments, self.address, exc)
            return False
        return True

    def ready(self) -> bool:
        """Startup is done: systemd marks the unit started and releases its dependants."""
        return self.send("READY=1")

    def status(self, text: str) -> bool:
        """One line shown by ``systemctl status``; newlines would end the field early."""
        return self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """Tell systemd the daemon is still alive; due every ``watchdog_interval()``."""
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        """Shutdown has begun, so systemd does not read the pause as a hang."""
        return self.send("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` calls: half the limit, as systemd advises.

        None when there is no watchdog, no notify socket, or the watchdog is meant for
        another process (WATCHDOG_PID set to a pid that is not ours).
        """
        if self.address is None or self.watchdog_usec is None or self.watchdog_usec <= 0:
            return None
        if self.watchdog_pid is not None and self.watchdog_pid != os.getpid():
            return None
        return self.watchdog_usec / 2 / 1_000_000
