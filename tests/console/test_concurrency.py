"""A double-clicked form sends two requests at once: exactly one acts, the other gets 409, over real HTTP."""

from __future__ import annotations

import threading

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Submission, Visit
from devservers.runner import serve_in_thread
from tests.console.conftest import PASSWORD


def _signed_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    response = session.post(
        f"{base}/console/login",
        data={"email": email, "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    return session


def _race(base: str, email: str, url: str, datas: list[dict]) -> list[int]:
    sessions = [_signed_in(base, email) for _ in datas]
    barrier = threading.Barrier(len(datas))
    codes: list[int] = [0] * len(datas)

    def hit(i: int) -> None:
        barrier.wait()
        codes[i] = (
            sessions[i].post(f"{base}{url}", data=datas[i], allow_redirects=False, timeout=30).status_code
        )

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(len(datas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return codes


@pytest.mark.parametrize("attempt", range(3))
def test_two_simultaneous_acknowledgements_act_once(app, users, study, attempt):
    handle = serve_in_thread(app)
    try:
        codes = _race(
            handle.url,
            users["coordinator"].email,
            f"/console/submissions/{study.red_flag_submission}/acknowledge",
            [{"note": "first note"}, {"note": "second note"}],
        )
    finally:
        handle.stop()
    assert sorted(codes) == [303, 409], codes
    db.session.expire_all()
    submission = db.session.get(Submission, study.red_flag_submission)
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "redflag.acknowledged")).all()
    assert len(entries) == 1 and entries[0].reason == submission.red_flag_note


def test_two_simultaneous_clinic_completions_act_once(app, users, study):
    handle = serve_in_thread(app)
    try:
        codes = _race(
            handle.url,
            users["coordinator"].email,
            f"/console/visits/{study.closing_visit}/clinic",
            [{"reason": "a"}, {"reason": "b"}, {"reason": "c"}],
        )
    finally:
        handle.stop()
    assert sorted(codes) == [303, 409, 409], codes
    db.session.expire_all()
    assert db.session.get(Visit, study.closing_visit).status == "completed"
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "visit.completed")
        )
        == 1
    )
