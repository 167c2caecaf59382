"""Helpers the local servers' tests share: a free port, a quick stop, waiting for a CLI server to answer."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from devservers.runner import ServerHandle

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on right now (for a CLI server, or a callback URL that is gone)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_quickly(handle: ServerHandle) -> None:
    """`handle.stop()`, poking the listening socket so serve_forever's poll wakes at once."""
    stopper = threading.Thread(target=handle.stop)
    stopper.start()
    while stopper.is_alive():
        with contextlib.suppress(OSError):
            socket.create_connection(handle.server.server_address, timeout=0.1).close()
        stopper.join(0.01)


def wait_until_serving(port: int, attempts: int = 200) -> None:
    """Poll `/_control` of a server started as a process until it answers (or `attempts` are used up)."""
    for _ in range(attempts):
        try:
            requests.get(f"http://127.0.0.1:{port}/_control", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)


def start_cli(module: str, port: int, *args: str) -> subprocess.Popen[str]:
    """`python -m <module> --port <port> <args>` from the project root, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
