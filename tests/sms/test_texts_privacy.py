"""No text reveals a condition, a treatment or an arm: neutral sender names and SMS_DENY_WORDS at start-up."""

from __future__ import annotations

import json

import pytest
from flask_babel import gettext

from app import ConfigError, create_app
from app.sms.privacy import denied_words, sample_params
from app.sms.texts import TEMPLATES, render
from config import DEFAULT_SMS_DENY_WORDS, DEFAULT_VISIT_PLAN, DevelopmentConfig, TestingConfig
from tests.conftest import build_app

LANGUAGES = ("en", "zh")


@pytest.fixture(scope="module")
def default_app(tmp_path_factory):
    """An app on the default settings (sender names, deny-list, visit plan), context pushed."""
    app = build_app("sqlite", tmp_path_factory.mktemp("privacy"))
    with app.app_context():
        yield app


def build(tmp_path, **env: str):
    """create_app on these settings, without a database: the start-up checks are what is under test."""
    settings = {"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", **env}
    return create_app(TestingConfig(settings, instance_path=tmp_path / "instance"))


def test_default_sender_names_are_neutral(tmp_path):
    config = DevelopmentConfig({}, instance_path=tmp_path)
    assert config.STUDY_SHORT_NAME == "GZ Follow-up"
    assert config.STUDY_SHORT_NAME_ZH == "随访中心"
    assert config.SMS_DENY_WORDS == DEFAULT_SMS_DENY_WORDS


def test_default_deny_list_covers_the_issue():
    required = [
        "randomisation", "randomization", "placebo", "stem", "MSC", "mesenchymal", "COVID",
        "coronavirus", "SARS", "trial arm", "随机", "安慰剂", "干细胞", "间充质", "新冠", "冠状病毒",
    ]  # fmt: skip
    assert [word for word in required if word not in DEFAULT_SMS_DENY_WORDS] == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_passes_the_deny_list(default_app, template, language):
    sender = "GZ Follow-up" if language == "en" else "随访中心"
    for visit in DEFAULT_VISIT_PLAN:
        body = render(template, language, **sample_params(default_app.config, visit["key"]))
        assert denied_words(body, DEFAULT_SMS_DENY_WORDS) == [], (template, language)
        assert sender in body


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("MSC-COVID study reminder", ["MSC", "COVID"]),
        ("【MSC-COVID】提醒", ["MSC", "COVID"]),
        ("after COVID-19 and SARS-CoV-2", ["COVID", "SARS"]),
        ("Stem-cell therapy", ["stem", "stem cell"]),
        ("stems and MSCs", ["stem", "MSC"]),
        ("a Placebo group, randomised", ["randomised", "placebo"]),
        ("your trial-arm today", ["trial arm"]),
        ("Mesenchymal coronaviruses", ["mesenchymal", "coronavirus"]),
        (
            "新冠肺炎干细胞随机安慰剂间充质冠状病毒",
            ["随机", "安慰剂", "干细胞", "间充质", "新冠", "冠状病毒"],
        ),
        ("the system of systemic care", []),
        ("a misc stemming sarsaparilla covidence", []),
        ("arm yourself: the trial is an alarm", []),
        ("【随访中心】您的第4周随访问卷已开放", []),
    ],
)
def test_latin_words_match_whole_words_and_chinese_anywhere(text, found):
    assert denied_words(text, DEFAULT_SMS_DENY_WORDS) == found


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"STUDY_SHORT_NAME": "MSC-COVID"}, "STUDY_SHORT_NAME"),
        ({"STUDY_SHORT_NAME": "Stem Cell Follow-up"}, "STUDY_SHORT_NAME"),
        ({"STUDY_SHORT_NAME_ZH": "新冠随访"}, "STUDY_SHORT_NAME_ZH"),
        ({"PUBLIC_BASE_URL": "https://covid-followup.example.org"}, "PUBLIC_BASE_URL"),
        ({"STUDY_SHORT_NAME": "GZ Hospital", "SMS_DENY_WORDS": "hospital, clinic"}, "STUDY_SHORT_NAME"),
        ({"SMS_DENY_WORDS": " , "}, "SMS_DENY_WORDS"),
    ],
)
def test_a_denied_word_in_a_setting_stops_start_up(env, setting, tmp_path):
    with pytest.raises(ConfigError, match=f"^{setting}: "):
        TestingConfig(env, instance_path=tmp_path)


def test_a_neutral_name_is_accepted_and_used_in_both_languages(tmp_path):
    app = build(tmp_path, STUDY_SHORT_NAME="Zhongshan Follow-up", STUDY_SHORT_NAME_ZH="中山随访")
    with app.app_context():
        assert render("test", "en").startswith("Zhongshan Follow-up:")
        assert render("test", "zh").startswith("【中山随访】")


def test_a_template_with_a_denied_word_stops_start_up(tmp_path, monkeypatch):
    monkeypatch.setitem(
        TEMPLATES, "test", lambda: gettext("%(study)s: test message about your placebo. No action needed.")
    )
    with pytest.raises(ConfigError, match=r"^SMS_DENY_WORDS: the en 'test' text contains 'placebo' "):
        build(tmp_path)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("questionnaire", r"^SMS_DENY_WORDS: the en 'invite' text contains 'questionnaire' "),
        ("问卷", r"^SMS_DENY_WORDS: the zh 'invite' text contains '问卷' \(reword it in translations/zh/\)"),
    ],
)
def test_the_deny_list_is_checked_against_every_rendered_text(words, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        build(tmp_path, SMS_DENY_WORDS=words)


def test_a_visit_named_with_a_denied_word_stops_start_up(tmp_path):
    plan = [dict(DEFAULT_VISIT_PLAN[0], key="placebo_week_4")]
    with pytest.raises(ConfigError, match="^VISIT_PLAN: visit 'placebo_week_4'"):
        build(tmp_path, VISIT_PLAN=json.dumps(plan))
