"""A guard that fails any outbound network call to a non-loopback address during tests.

Like RapidPro's `install_mailroom_guard`: our fakes are loopback servers speaking the real protocol, so a
connection anywhere else is a test reaching the outside world. The guard raises `OutboundNetworkCall`, a
`BaseException`, so no `except Exception` in the code under test can swallow it. It fires before the
connection is attempted, so nothing is ever sent.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_installed = False


class OutboundNetworkCall(BaseException):
    """A test tried to open a connection to a non-loopback address."""


def _is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    try:  # a host name: allowed only when every address it names is loopback
        infos = _real_getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_loopback for info in infos
    )


def check_address(family: int, address: Any) -> None:
    """Raise OutboundNetworkCall unless `address` is a unix socket, 127.0.0.0/8 or ::1."""
    if family == getattr(socket, "AF_UNIX", None) or isinstance(address, (str, bytes)):
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode()
    if not _is_loopback_host(str(host)):
        raise OutboundNetworkCall(
            f"outbound network call to {address!r} during tests (only loopback allowed)"
        )


def _refuse_unless_loopback(sock: socket.socket, address: Any) -> None:
    try:
        check_address(sock.family, address)
    except OutboundNetworkCall:
        sock.close()  # callers such as socket.create_connection only close on OSError
        raise


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _refuse_unless_loopback(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _refuse_unless_loopback(self, address)
    return _real_connect_ex(self, address)


def install() -> None:
    """Wrap socket.socket.connect and connect_ex (socket.create_connection and every client go through them)."""
    global _installed
    if _installed:
        return
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    _installed = True


def uninstall() -> None:
    """Put the real methods back."""
    global _installed
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    _installed = False
