"""Every SMS template, in English and Chinese, fits in two segments with the longest real link."""

from __future__ import annotations

import pytest

from app.sms.texts import TEMPLATES, count_segments, encoding, render, visit_label
from tests.conftest import build_app

# The longest link we send: the production host name and a 22-character token (128 bits, base64url).
LONGEST_LINK = "https://followup.example-hospital.org.cn/s/" + "Ab3_-Zx9" * 2 + "Qw7_-P"
PARAMS = {"visit_key": "month_6", "link": LONGEST_LINK, "record": "NCT04346368-0001"}


@pytest.fixture(scope="module")
def texts_app(tmp_path_factory):
    """Texts need an app (catalogues, settings) but no database: one SQLite app for the module."""
    app = build_app("sqlite", tmp_path_factory.mktemp("texts"), STUDY_PHONE="+86 20 8306 2000")
    with app.app_context():
        yield app


def test_longest_link_is_what_we_issue(texts_app):
    assert len(LONGEST_LINK.rsplit("/", 1)[1]) == 22


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_fits_two_segments(texts_app, template, language):
    body = render(template, language, **PARAMS)
    expected = "GSM-7" if language == "en" else "UCS-2"
    assert encoding(body) == expected, body
    assert count_segments(body) <= 2, (template, language, len(body))
    if "link" in body or template in ("invite", "reminder", "reply_link"):
        assert LONGEST_LINK in body


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_chinese_comes_from_the_catalogue(texts_app, template):
    english, chinese = render(template, "en", **PARAMS), render(template, "zh", **PARAMS)
    assert english != chinese
    assert english.startswith("GZ Follow-up") and "【随访中心】" in chinese


def test_texts_carry_no_health_information_or_arm(texts_app):
    forbidden = [
        "covid",
        "stem cell",
        "msc group",
        "placebo",
        "randomi",
        "arm",
        "diagnos",
        "spo2",
        "干细胞",
        "安慰剂",
    ]
    for template in TEMPLATES:
        for language in ("en", "zh"):
            body = render(template, language, **PARAMS).lower()
            assert not [word for word in forbidden if word in body], (template, language, body)


def test_opt_out_instructions_in_link_texts(texts_app):
    for template in ("invite", "reminder"):
        assert "Reply STOP" in render(template, "en", **PARAMS)
        assert "回复TD退订" in render(template, "zh", **PARAMS)


def test_segment_counter_matches_carrier_rules():
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("a" * 306) == 2
    assert count_segments("a" * 307) == 3
    assert count_segments("€" * 80) == 1
    assert count_segments("€" * 81) == 2  # extension characters cost two septets
    assert count_segments("中" * 70) == 1
    assert count_segments("中" * 71) == 2
    assert count_segments("中" * 134) == 2
    assert count_segments("中" * 135) == 3


def test_visit_labels(texts_app):
    from flask_babel import force_locale

    with force_locale("en"):
        assert visit_label("week_4") == "week-4"
        assert visit_label("extra_visit") == "extra visit"
    with force_locale("zh"):
        assert visit_label("month_6") == "第6个月"


def test_missing_placeholder_fails_loudly(texts_app):
    with pytest.raises(KeyError):
        render("invite", "en", visit_key="week_4")
