"""Which peer's X-Forwarded-* headers are believed: ProxyFix, applied only to trusted proxies.

Werkzeug's ProxyFix believes the headers from whoever sends them, so a client that reaches gunicorn
directly could name any address and never meet a rate limit. Here the headers count only when the
TCP peer is in FORWARDED_ALLOW_IPS; from any other peer they are dropped before the app sees them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

_FORWARDED_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)


class TrustedPeers:
    """A set of addresses and networks; `*` trusts every peer."""

    def __init__(self, entries: Iterable[str]):
        entries = list(entries)
        self.any = "*" in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != "*"]

    def __contains__(self, address: str | None) -> bool:
        if self.any:
            return True
        if not address:
            return True  # a UNIX socket: only local processes reach it (gunicorn trusts it too)
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


class TrustedProxyFix:
    """ProxyFix with `hops` hops for requests from a trusted peer; forwarded headers dropped otherwise."""

    def __init__(self, wsgi_app: Any, hops: int, trusted: Iterable[str]):
        self.wsgi_app = wsgi_app
        self.fixed = ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
        self.trusted = TrustedPeers(trusted)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") in self.trusted:
            return self.fixed(environ, start_response)
        for name in _FORWARDED_HEADERS:
            environ.pop(name, None)
        return self.wsgi_app(environ, start_response)
