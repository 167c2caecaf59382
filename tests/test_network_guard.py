"""The test-wide network guard refuses non-loopback connections and lets loopback through."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.network_guard import OutboundNetworkCall


def test_a_connection_to_a_public_address_raises_before_connecting():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OutboundNetworkCall, match="192.0.2.1"):
            sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never reached, the guard fires first
        with pytest.raises(OutboundNetworkCall):
            sock.connect_ex(("192.0.2.1", 80))
    finally:
        sock.close()


def test_create_connection_is_guarded_and_no_except_exception_swallows_it():
    with pytest.raises(OutboundNetworkCall):
        try:
            socket.create_connection(("192.0.2.1", 443), timeout=1)
        except Exception:  # what client code does; the guard is a BaseException and goes through
            pytest.fail("the guard was swallowed by except Exception")


def test_loopback_still_connects():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = threading.Thread(target=lambda: server.accept()[0].close())
    accepted.start()
    try:
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    finally:
        accepted.join(5)
        server.close()
