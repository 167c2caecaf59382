"""The link-guess limit: only failed lookups count, a real link always opens, per-worker counts said aloud."""

from __future__ import annotations

from app.models import utcnow
from app.proxies import TrustedPeers
from app.questionnaire.store import save_metadata
from tests.patient.conftest import TRIAL, invite, load_metadata


def _limited_app(app_factory, **env: str):
    app = app_factory(RATELIMIT_ENABLED="true", TOKEN_GUESS_LIMIT="3 per minute", **env)
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    return app


def test_a_limited_address_still_opens_a_valid_link(app_factory):
    app = _limited_app(app_factory)
    with app.app_context():
        inv = invite()
        client = app.test_client()
        assert [client.get(f"/s/wrong-{i:018d}").status_code for i in range(4)] == [404] * 3 + [429]
        assert client.get(inv.url).status_code == 200
        assert client.get("/s/wrong-again-000000000").status_code == 429


def test_guesses_without_csrf_token_are_counted_too(app_factory):
    # A POST without a CSRF token never reaches the view: the CSRF handler must count it as well.
    app = _limited_app(app_factory, WTF_CSRF_ENABLED="true")
    with app.app_context():
        client = app.test_client()
        codes = [client.post(f"/s/wrong-{i:018d}", data={}).status_code for i in range(4)]
        assert codes == [404] * 3 + [429]


def test_trusted_peers_take_addresses_networks_and_mapped_ipv4():
    peers = TrustedPeers(["127.0.0.1", "::1", "10.1.0.0/16"])
    assert "127.0.0.1" in peers and "::1" in peers and "10.1.200.3" in peers
    assert "::ffff:10.1.0.7" in peers  # an IPv4 peer on a dual-stack socket
    assert "10.2.0.1" not in peers and "203.0.113.9" not in peers and "not-an-ip" not in peers
    assert "203.0.113.9" in TrustedPeers(["*"])


def test_untrusted_peer_forwarded_headers_are_dropped(app_factory):
    app = app_factory(PROXY_FIX_HOPS="1", FORWARDED_ALLOW_IPS="10.0.0.0/8")
    with app.app_context():
        seen = {}

        @app.get("/__peer")
        def peer():
            from flask import request

            seen.update(addr=request.remote_addr, scheme=request.scheme)
            return ""

        headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        app.test_client().get("/__peer", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert seen == {"addr": "127.0.0.1", "scheme": "http"}
        app.test_client().get("/__peer", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.5"})
        assert seen == {"addr": "203.0.113.9", "scheme": "https"}


def test_production_with_per_worker_counts_says_so_at_start(tmp_path, caplog):
    from app import create_app
    from config import ProductionConfig

    settings = {
        "SECRET_KEY": "s",
        "REDCAP_API_TOKEN": "t",
        "SMS_BACKEND": "console",
        "PUBLIC_BASE_URL": "https://followup.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
    }
    create_app(ProductionConfig(settings, instance_path=tmp_path / "instance"))
    assert any("counted per gunicorn worker" in r.getMessage() for r in caplog.records)
    caplog.clear()
    create_app(ProductionConfig({**settings, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15"}, tmp_path))
    assert not any("counted per gunicorn worker" in r.getMessage() for r in caplog.records)
