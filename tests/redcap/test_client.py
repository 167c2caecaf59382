"""The REDCap client over real HTTP: REDCap's answers become our exceptions; the token never shows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from app.redcap.client import (
    ForbiddenFieldError,
    RedcapAuthError,
    RedcapClient,
    RedcapConfigError,
    RedcapRejected,
    RedcapUnavailable,
)
from devservers.redcap_api import DEV_TOKEN
from devservers.redcap_state import RedcapState
from tests.redcap.conftest import baseline_row, start_server

OTHER_TOKEN = "ABCDEF0123456789ABCDEF0123456789"


@pytest.fixture
def server() -> Iterator[tuple[str, RedcapState]]:
    """The trial's project with two fictitious records; no database needed."""
    handle, state = start_server()
    state.seed_records([baseline_row("5001", "2026-10-01"), baseline_row("5002", "2026-10-02")])
    yield f"{handle.url}/api/", state
    state.close()
    handle.stop()


def client(url: str, token: str = DEV_TOKEN, **kwargs) -> RedcapClient:
    kwargs.setdefault("max_calls_per_second", 200)
    kwargs.setdefault("timeout", 0.5)
    return RedcapClient(url, token, exportable_forms=["followup_questionnaire"], **kwargs)


FAULTS = [
    ("500", "HTTP 500"),
    ("503", "HTTP 503"),
    ("not_json", "not JSON"),
    ("timeout", "did not answer within 0.5 s"),
    ("ban", "rate limit or IP ban (HTTP 429)"),
]


@pytest.mark.parametrize(("fault", "message"), FAULTS)
def test_outages_are_redcap_unavailable_without_the_token(server, caplog, fault, message):
    url, state = server
    state.fail(fault, count=1, hang_s=1.5)
    caplog.set_level(logging.DEBUG)
    c = client(url)
    with pytest.raises(RedcapUnavailable) as excinfo:
        c.export_records(["record_id"])
    assert message in str(excinfo.value)
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    assert DEV_TOKEN not in str(excinfo.value) and DEV_TOKEN not in caplog.text and DEV_TOKEN not in repr(c)


def test_connection_refused_is_unavailable():
    with pytest.raises(RedcapUnavailable, match="cannot connect"):
        client("http://127.0.0.1:9/api/").export_records(["record_id"])


def test_rejections_carry_redcaps_text_and_bad_tokens_are_auth_errors(server, caplog):
    url, _ = server
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RedcapRejected) as excinfo:
        client(url).import_records(
            [{"record_id": "5001", "redcap_event_name": "week_4_arm_1", "fu_cough": "7"}]
        )
    assert excinfo.value.message == '"5001","fu_cough","7","The value is not a valid category for fu_cough"'
    with pytest.raises(RedcapAuthError, match="You do not have permissions to use the API") as auth:
        client(url, OTHER_TOKEN).export_records(["record_id"])
    assert OTHER_TOKEN not in str(auth.value) and OTHER_TOKEN not in caplog.text


def test_a_token_of_the_wrong_shape_is_refused_before_pycap_can_print_it():
    for token in ("short-secret", "x" * 31 + "!", ""):
        with pytest.raises(RedcapConfigError) as excinfo:
            RedcapClient("http://127.0.0.1:9/api/", token)
        assert "REDCAP_API_TOKEN" in str(excinfo.value)
        assert not token or token not in str(excinfo.value)
    with pytest.raises(RedcapConfigError, match="REDCAP_API_URL"):
        RedcapClient("http://127.0.0.1:9/redcap", DEV_TOKEN)


def test_the_forbidden_field_guard_raises_before_any_call(server):
    url, state = server
    c = client(url)
    attempts = [
        lambda: c.export_records(["record_id", "randomization_group"]),
        lambda: c.export_records(["record_id"], filter_logic="[randomization_group] = '1'"),
        lambda: c.export_records(["Randomization_Group"]),
        lambda: c.export_records([]),  # a record export must name its fields
        lambda: c.export_records(forms=["enrollment"]),  # could carry the blinded arm
        lambda: c.import_records([{"record_id": "5001", "randomization_group": "2"}]),
    ]
    for attempt in attempts:
        with pytest.raises(ForbiddenFieldError):
            attempt()
    assert state.calls == []
    rows = c.export_records(forms=["followup_questionnaire"], events=["week_4_arm_1"])
    assert rows == [] and state.calls[0]["forms"] == ["followup_questionnaire"]


def test_rate_ceiling_is_process_wide_across_clients_and_threads(server):
    url, state = server
    clients = [client(url, max_calls_per_second=5) for _ in range(3)]

    def work(c: RedcapClient) -> None:
        for _ in range(4):
            c.export_records(["record_id"])

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(state.calls) == 12
    assert state.max_calls_in_window(1.0) <= 5
    assert sum(c.calls for c in clients) == 12
