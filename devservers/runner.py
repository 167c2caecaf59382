"""Serve a WSGI app on a free loopback port in a background thread, for tests and `make run`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class ServerHandle:
    """A running loopback server; `stop()` shuts it down and joins its thread."""

    server: BaseWSGIServer
    thread: threading.Thread
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app, port: int = 0) -> ServerHandle:
    """Start `app` on 127.0.0.1 (port 0 = any free port), threaded, as a daemon thread.

    Daemon threads die with the test process, so a forgotten server never outlives it.
    """
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(
        target=lambda: server.serve_forever(poll_interval=0.05),
        name=f"devserver-{server.server_port}",
        daemon=True,
    )
    thread.start()
    return ServerHandle(server=server, thread=thread)


def serve_until_stopped(handle: ServerHandle, close: Callable[[], object]) -> None:
    """Keep a devserver's CLI alive until SIGTERM (how `make run` stops it) or Ctrl-C, then shut down.

    `close` releases the server's own threads and parked requests first, so stopping never waits on them.
    """
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while handle.thread.is_alive() and not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        close()
        handle.stop()
