"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledbelly.ops.notify import Notifier, socket_address


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and the NOTIFY_SOCKET value that names it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        yield sock, str(path)


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    name = f"ledbelly-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        yield sock, "@" + name


def test_ready_sends_ready_to_a_path_socket(receiver: tuple[socket.socket, str]) -> None:
    sock, value = receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": value})
    assert notifier.enabled
    assert notifier.ready() is True
    assert sock.recv(4096) == b"READY=1"


def test_every_message_reaches_an_abstract_socket(
    abstract_receiver: tuple[socket.socket, str],
) -> None:
    sock, value = abstract_receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": value})
    assert notifier.ready()
    assert notifier.status("consuming 3 queues")
    assert notifier.watchdog()
    assert notifier.stopping()
    got = [sock.recv(4096) for _ in range(4)]
    assert got == [b"READY=1", b"STATUS=consuming 3 queues", b"WATCHDOG=1", b"STOPPING=1"]


def test_status_is_kept_on_one_line(receiver: tuple[socket.socket, str]) -> None:
    sock, value = receiver
    Notifier.from_env({"NOTIFY_SOCKET": value}).status("database down\nretrying")
    assert sock.recv(4096) == b"STATUS=database down retrying"


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "10000000"})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    assert notifier.watchdog_interval() is None


def test_from_env_reads_os_environ(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, value = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier.from_env()
    assert notifier.watchdog_interval() == 2.0
    notifier.ready()
    assert sock.recv(4096) == b"READY=1"


def test_send_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.DEBUG, logger="ledbelly.ops.notify"):
        assert notifier.ready() is False
    assert any("sd_notify" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **env})
    assert notifier.watchdog_interval() == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/run/x", "/run/x"), ("@name", "\0name"), ("@", None), ("vsock:2:1234", None)],
)
def test_socket_address(value: str, expected: str | None) -> None:
    assert socket_address(value) == expected


def test_unsupported_address_disables_notification() -> None:
    assert not Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
