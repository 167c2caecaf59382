"""Entry codes (SMS_LINK_MODE=entry): typed at /c, they open the same questionnaire as a link; every
unusable code gets the same page; only wrong codes count against the guess limit; codes are unique."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import EntryCode, SurveyLink, utcnow
from app.participants import entry_codes
from app.participants.entry_codes import ALPHABET, CODE_LENGTH, issue_code, normalise, personal_code
from app.participants.links import revoke_links
from app.questionnaire.store import save_metadata
from tests.patient.conftest import TRIAL, invite, load_metadata


@pytest.fixture
def entry_app(app_factory):
    """An app in entry mode with the trial's questionnaire; context pushed."""
    app = app_factory(SMS_LINK_MODE="entry")
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
        yield app


def _code_for(inv) -> str:
    code = issue_code(inv.visit, utcnow())
    db.session.commit()
    return code


def test_codes_use_the_alphabet_without_look_alikes_and_only_a_keyed_hash_is_stored(entry_app):
    inv = invite()
    codes = {_code_for(inv) for _ in range(20)}
    assert len(codes) == 20
    for code in codes:
        assert len(code) == CODE_LENGTH and set(code) <= set(ALPHABET)
        assert not set(code) & set("0O1IL")
    stored = db.session.scalars(select(EntryCode.code_hash)).all()
    assert len(stored) == 20 and not codes & set(stored)
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
    import hashlib

    assert not {hashlib.sha256(c.encode()).hexdigest() for c in codes} & set(stored)  # keyed, not plain


def test_typing_is_forgiving_spaces_dashes_case_and_full_width():
    assert normalise(" abcd-2345 ") == "ABCD2345"
    assert normalise("ＡＢＣＤ　２３４５") == "ABCD2345"  # full-width letters, digits and space (NFKC)
    assert normalise("ab cd–23 45") == "ABCD2345"


def test_personal_code_in_both_modes(entry_app):
    inv = invite()
    now = utcnow()
    token = personal_code(inv.visit, now, "path")
    code = personal_code(inv.visit, now, "entry")
    assert personal_code(inv.visit, now) and len(personal_code(inv.visit, now)) == CODE_LENGTH  # the setting
    db.session.commit()
    assert len(token) == 22 and "/" not in token and "." not in token
    assert len(code) == CODE_LENGTH
    assert entry_codes.code_base_url("entry").endswith("/c")
    assert entry_codes.code_base_url("path").endswith("/s/")
    client = entry_app.test_client()
    assert client.get(f"/s/{token}").status_code == 200
    with pytest.raises(ValueError):
        personal_code(inv.visit, now, "sms")  # type: ignore[arg-type]


def test_a_right_code_opens_the_questionnaire_however_it_is_typed(entry_app):
    inv = invite()
    client = entry_app.test_client()
    page = client.get("/c")
    assert page.status_code == 200 and b'name="code"' in page.data
    for typed in (lambda c: c, lambda c: f" {c[:4].lower()}-{c[4:]} ", lambda c: c.translate(_FULL_WIDTH)):
        code = _code_for(inv)
        answer = client.post("/c", data={"code": typed(code)})
        assert answer.status_code == 303
        location = answer.headers["Location"]
        assert location.startswith("/s/") and code not in location and "?" not in location
        opened = client.get(location)
        assert opened.status_code == 200 and b'id="qform"' in opened.data
        assert b"Stop text reminders" in opened.data
    # each right code issued a fresh link for the same visit
    assert {link.visit_id for link in db.session.scalars(select(SurveyLink))} == {inv.visit.id}


_FULL_WIDTH = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "".join(chr(0xFF10 + i) for i in range(10)) + "".join(chr(0xFF21 + i) for i in range(26)),
)


def test_the_language_picked_on_the_code_page_carries_over(entry_app):
    inv = invite(language="en")
    client = entry_app.test_client()
    assert "输入您的随访码" in client.get("/c?lang=zh").get_data(as_text=True)
    answer = client.post("/c?lang=zh", data={"code": _code_for(inv)})
    assert answer.headers["Location"].endswith("?lang=zh")
    assert "停止短信提醒" in client.get(answer.headers["Location"]).get_data(as_text=True)


def test_wrong_used_expired_and_revoked_codes_get_the_same_page(entry_app):
    client = entry_app.test_client()
    client.get("/c")  # one session, so the CSRF field is the same on every page
    wrong = client.post("/c", data={"code": "ABCD2345"})
    malformed = client.post("/c", data={"code": "0O1IL"})

    answered = invite()
    used_code = _code_for(answered)
    answered.visit.status = "completed"
    answered.visit.completed_at = utcnow()
    db.session.commit()
    used = client.post("/c", data={"code": used_code})

    old = invite()
    old_code = _code_for(old)
    row = db.session.scalar(select(EntryCode).where(EntryCode.visit_id == old.visit.id))
    row.valid_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    expired = client.post("/c", data={"code": old_code})

    moved = invite()
    moved_code = _code_for(moved)
    revoke_links(moved.visit, utcnow())  # a new phone number: links and codes go together
    db.session.commit()
    revoked = client.post("/c", data={"code": moved_code})

    bodies = {r.data for r in (wrong, malformed, used, expired, revoked)}
    assert {r.status_code for r in (wrong, malformed, used, expired, revoked)} == {404}
    assert len(bodies) == 1
    assert b"This code cannot be used" in wrong.data


def _limited(app_factory, **env):
    app = app_factory(
        SMS_LINK_MODE="entry", RATELIMIT_ENABLED="true", TOKEN_GUESS_LIMIT="3 per minute", **env
    )
    with app.app_context():
        save_metadata(load_metadata("trial_project"), TRIAL, utcnow())
    return app


def test_only_wrong_codes_count_and_a_right_code_always_opens(app_factory):
    app = _limited(app_factory)
    with app.app_context():
        inv = invite()
        client = app.test_client()
        for _ in range(5):  # right codes never count
            assert client.post("/c", data={"code": _code_for(inv)}).status_code == 303
        codes = [client.post("/c", data={"code": f"WRONG{i:03d}"}).status_code for i in range(4)]
        assert codes == [404, 404, 404, 429]
        assert client.post("/c", data={"code": _code_for(inv)}).status_code == 303  # over the limit
        assert client.get("/s/wrong-link-000000000000").status_code == 429  # one budget for codes and links


def test_post_without_csrf_token_changes_nothing_and_counts_nothing(app_factory):
    app = _limited(app_factory, WTF_CSRF_ENABLED="true")
    with app.app_context():
        inv = invite()
        code = _code_for(inv)
        client = app.test_client()
        answers = [client.post("/c", data={"code": code}) for _ in range(5)]
        assert {a.status_code for a in answers} == {400}
        assert b"expired" in answers[0].data
        page = client.get("/c").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post("/c", data={"code": code, "csrf_token": csrf}).status_code == 303


def test_codes_are_unique_a_collision_is_drawn_again(entry_app, monkeypatch):
    inv = invite()
    drawn = iter(["ABCD2345", "ABCD2345", "WXYZ6789"])
    monkeypatch.setattr(entry_codes, "_new_code", lambda: next(drawn))
    assert issue_code(inv.visit, utcnow()) == "ABCD2345"
    assert issue_code(inv.visit, utcnow()) == "WXYZ6789"
    db.session.commit()
    monkeypatch.setattr(entry_codes, "_new_code", lambda: "ABCD2345")
    with pytest.raises(entry_codes.CodeCollision):
        issue_code(inv.visit, utcnow())
