"""The push's imports on a worker: the next window is screened while an import is in flight, never further
ahead; outcomes are recorded by the pass; an outage on either side loses nothing and sends nothing twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Submission, utcnow
from app.redcap.client import RedcapUnavailable, get_client
from app.redcap.push import run as redcap_push
from app.redcap.push.run import push_pending
from tests.redcap.test_push import ready, statuses, submissions

WAIT_S = 20.0  # generous: only a broken pipeline waits this long (the test then fails, it does not hang)


@pytest.fixture
def windows_of_one_batch(redcap_server, monkeypatch):
    """Batches of 3 rows, one batch per screened window, so windows and imports interleave visibly."""
    redcap_server.rebuild(REDCAP_BATCH_SIZE="3")
    monkeypatch.setattr(redcap_push, "SCREEN_RECORDS", 3)
    ready(redcap_server)
    return redcap_server


class Recorder:
    """A pre-push check and an import wrapper that log, in order, what each thread did."""

    def __init__(self, client, monkeypatch, *, hold_first_import: bool = True) -> None:
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.second_check = threading.Event()
        self.hold_first_import = hold_first_import
        self.fail_check: int | None = None
        self.fail_import: int | None = None
        self.checks = self.imports = 0
        real_import = client.import_records

        def import_records(rows):
            with self.lock:
                self.imports += 1
                n = self.imports
            self.log(f"import {n} start")
            if n == 1 and self.hold_first_import:
                # The first import stays in flight until the pass has screened the next window.
                assert self.second_check.wait(WAIT_S), "the next window was not screened during an import"
            if self.fail_import is not None and n >= self.fail_import:  # down from then on
                raise RedcapUnavailable("REDCap answered HTTP 503")
            try:
                return real_import(rows)
            finally:
                self.log(f"import {n} end")

        client.import_records = import_records
        monkeypatch.setattr(redcap_push, "_PRE_PUSH_CHECKS", [self.check])

    def log(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def check(self, items, client, now):
        self.checks += 1
        self.log(f"check {self.checks}")
        if self.checks == 2:
            self.second_check.set()
        if self.checks == self.fail_check:
            raise RedcapUnavailable("REDCap answered HTTP 503")
        return set()


def test_next_window_is_screened_while_an_import_is_in_flight_and_never_further(
    windows_of_one_batch, monkeypatch
):
    server = windows_of_one_batch
    submissions(9)
    client = get_client()
    recorder = Recorder(client, monkeypatch)
    report = push_pending(utcnow(), client=client)
    assert (report.pushed, report.deferred, report.unavailable) == (9, 0, None)
    events = recorder.events
    # Window 2 was screened while import 1 was in flight ...
    assert events.index("check 2") < events.index("import 1 end")
    # ... but window 3 only after import 1 came back: the pass is never more than one window ahead.
    assert events.index("check 3") > events.index("import 1 end")
    # Imports went one at a time, in queue order.
    imports = [e for e in events if e.startswith("import")]
    assert imports == [f"import {n} {edge}" for n in (1, 2, 3) for edge in ("start", "end")]
    assert [c["record_count"] for c in server.calls("record", "import")] == [3, 3, 3]
    assert statuses() == {"pushed": 9}


def test_outage_in_an_import_keeps_what_landed_and_defers_the_rest(windows_of_one_batch, monkeypatch):
    server = windows_of_one_batch
    ids = submissions(9)
    client = get_client()
    recorder = Recorder(client, monkeypatch, hold_first_import=False)
    recorder.fail_import = 2  # REDCap goes down at batch 2: all its attempts fail
    now = utcnow()
    report = push_pending(now, client=client, sleep=lambda s: None)
    assert report.unavailable and report.pushed == 3
    db.session.expire_all()
    rows = {s.id: s for s in db.session.scalars(select(Submission))}
    assert [rows[i].sync_status for i in ids] == ["pushed"] * 3 + ["pending"] * 6
    assert all(rows[i].next_attempt_at > now + timedelta(seconds=10) for i in ids[3:6])
    assert all("REDCap unavailable" in rows[i].last_error for i in ids[3:6])
    # Batch 3 was either handed over (then skipped by the stopped worker and deferred) or never read.
    assert all(
        (rows[i].sync_attempts, rows[i].last_error) == (0, None) or "REDCap unavailable" in rows[i].last_error
        for i in ids[6:]
    )
    # Nothing after the outage was sent: the worker stopped before batch 3.
    assert recorder.imports == 1 + 3  # import 1, then batch 2 tried three times
    assert len(server.calls("record", "import")) == 1
    recorder.fail_import = None  # REDCap is back
    report = push_pending(now + timedelta(hours=2), client=client)
    assert report.pushed == 6 and statuses() == {"pushed": 9}


def test_outage_while_screening_records_the_import_in_flight(windows_of_one_batch, monkeypatch):
    ids = submissions(9)
    client = get_client()
    recorder = Recorder(client, monkeypatch)
    recorder.fail_check = 2  # REDCap goes down for the next window's check, import 1 still in flight
    now = utcnow()
    report = push_pending(now, client=client, sleep=lambda s: None)
    assert report.unavailable and report.pushed == 3
    db.session.expire_all()
    rows = {s.id: s for s in db.session.scalars(select(Submission))}
    assert [rows[i].sync_status for i in ids] == ["pushed"] * 3 + ["pending"] * 6
    assert all(rows[i].pushed_at is not None for i in ids[:3])
    assert all(rows[i].next_attempt_at > now + timedelta(seconds=10) for i in ids[3:6])  # the window hit
    assert all(rows[i].sync_attempts == 0 for i in ids[6:])  # never read: due as before
    assert recorder.imports == 1
