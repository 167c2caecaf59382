"""The questionnaire page as REDCap defines it: control names and types, languages, no-JS text, budget."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.patient.conftest import invite


class Controls(HTMLParser):
    """Collects inputs, labels, fieldsets/legends, scripts and styles of a page. Controls inside a
    <template> are inert (never shown nor sent without a script): they go to `templated`."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str]] = []
        self.templated: list[dict[str, str]] = []
        self._templates = 0
        self.label_for: set[str] = set()
        self.fieldsets = 0
        self.legends = 0
        self.external: list[str] = []
        self.inline_scripts: list[str] = []
        self.style_attrs = 0
        self._script: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if "style" in a:
            self.style_attrs += 1
        if any(k.startswith("on") for k in a):
            self.inline_scripts.append(tag)
        if tag == "template":
            self._templates += 1
        elif tag in ("input", "select", "textarea"):
            a["_tag"] = tag
            (self.templated if self._templates else self.inputs).append(a)
        elif tag == "label" and a.get("for"):
            self.label_for.add(a["for"])
        elif tag == "fieldset":
            self.fieldsets += 1
        elif tag == "legend":
            self.legends += 1
        elif tag == "script":
            self._script = a
            if a.get("src", "").startswith(("http:", "https:", "//")):
                self.external.append(a["src"])
        elif tag == "link" and a.get("href", "").startswith(("http:", "https:", "//")):
            self.external.append(a["href"])
        elif tag == "img" and a.get("src", "").startswith(("http:", "https:", "//")):
            self.external.append(a["src"])

    def handle_data(self, data):
        script = self._script
        if (
            script is not None
            and not script.get("src")
            and data.strip()
            and script.get("type") != "application/json"
        ):
            self.inline_scripts.append("script")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None
        elif tag == "template":
            self._templates -= 1

    def named(self, name: str) -> list[dict[str, str]]:
        return [i for i in self.inputs if i.get("name") == name]


def fetch(client, path: str) -> bytes:
    """A static file's bytes (the response is closed: its file handle must not leak)."""
    response = client.get(path)
    try:
        return response.data
    finally:
        response.close()


def parse(html: str) -> Controls:
    c = Controls()
    c.feed(html)
    return c


def test_every_field_type_has_its_redcap_name_and_native_input(wellbeing):
    client = wellbeing.test_client()
    inv = invite()
    page = client.get(inv.url)
    assert page.status_code == 200
    c = parse(page.get_data(as_text=True))
    # radio with REDCap codes as values (incl. text codes and -99)
    assert {i["value"] for i in c.named("wb_mobility_aid")} == {"cane", "frame", "chair", "-99"}
    assert all(i["type"] == "radio" for i in c.named("wb_mobility_aid"))
    # dropdown: a select whose options are the codes
    (mobility,) = c.named("wb_mobility")
    assert mobility["_tag"] == "select"
    html = page.get_data(as_text=True)
    assert re.search(r'<option[^>]*value="3"', html)
    # truefalse and yesno: radios 1/0
    assert sorted(i["value"] for i in c.named("wb_pain")) == ["0", "1"]
    assert sorted(i["value"] for i in c.named("wb_contact_ok")) == ["0", "1"]
    # checkbox: one input per option named field___code (codes lower-cased, other characters as _)
    for column in (
        "wb_support___1",
        "wb_support___2",
        "wb_support___3",
        "wb_support___other_x",
        "wb_support____99",
    ):
        (box,) = c.named(column)
        assert box["type"] == "checkbox" and box["value"] == "1"
    # slider: a whole-number box with REDCap's bounds (the script makes it a range), blank until answered;
    # the script's "no answer" box waits in a <template>, so it is never sent without the script
    (slider,) = c.named("wb_pain_score")
    assert slider["type"] == "number" and (slider["min"], slider["max"], slider["step"]) == ("0", "10", "1")
    assert slider["value"] == "" and "data-slider" in slider
    assert not c.named("_unanswered")
    assert [i["value"] for i in c.templated if i.get("name") == "_unanswered"] == ["wb_pain_score"]
    # text validations: native inputs with ranges
    (visit_date,) = c.named("wb_visit_date")
    assert (
        visit_date["type"] == "date"
        and visit_date["min"] == "2020-01-01"
        and re.fullmatch(r"\d{4}-\d\d-\d\d", visit_date["max"])
    )
    (weight,) = c.named("wb_weight")
    assert (
        weight["type"] == "number"
        and weight["inputmode"] == "decimal"
        and (weight["min"], weight["max"]) == ("30", "250")
    )
    (steps,) = c.named("wb_steps")
    assert steps["type"] == "number" and steps["inputmode"] == "numeric" and steps["step"] == "1"
    (email,) = c.named("wb_email")
    assert email["type"] == "email"
    (phone,) = c.named("wb_phone")
    assert phone["type"] == "tel"
    (notes,) = c.named("wb_alone_plan")
    assert notes["_tag"] == "textarea"
    (free,) = c.named("wb_support_other")
    assert free["type"] == "text"
    # @HIDDEN-SURVEY fields are not shown; descriptive text and section headers are
    assert not c.named("wb_flag")
    assert "Before you start" in html and 'id="q-wb_intro"' in html
    # nothing but the metadata's columns (and the CSRF token) is a control name
    names = {i.get("name") for i in c.inputs}
    from app.questionnaire.store import current_definition

    columns = set(current_definition("wellbeing_check").columns())
    assert names - columns == {"csrf_token"}


def test_accessible_structure(wellbeing):
    client = wellbeing.test_client()
    html = client.get(invite().url).get_data(as_text=True)
    c = parse(html)
    visible = [i for i in c.inputs if i.get("type") != "hidden"]
    assert visible
    for control in visible:
        assert control.get("id") in c.label_for, f"no <label for> for {control.get('name')}"
    # radio and checkbox groups are fieldsets with legends
    groups = len(set(i["name"] for i in c.inputs if i.get("type") == "radio")) + 1  # + the checkbox group
    assert c.fieldsets >= groups and c.fieldsets == c.legends


def test_branching_questions_say_when_they_apply_for_no_js(trial, client):
    html = client.get(invite().url).get_data(as_text=True)
    assert "Answer only if: “Since your last visit, have you had a fever" in html
    assert "is “Yes”" in html
    assert "“Other” is ticked for" in html
    # the browser script reads the same logic as JSON data, not as code
    assert '<script type="application/json" id="q-logic">' in html
    assert (
        '"fu_fever_days": {"left": {"col": "fu_fever", "field": "fu_fever"}' in html
        or '"fu_fever_days"' in html
    )


def test_labels_in_chinese_from_the_translation_file(trial, client):
    inv = invite(language="zh")
    html = client.get(inv.url).get_data(as_text=True)
    assert '<html lang="zh-CN">' in html
    assert "自上次随访以来，您是否发热" in html
    assert "随访问卷" in html and "提交我的回答" in html
    assert "仅在以下情况时回答" in html
    assert ">是</span>" in html and ">否</span>" in html


def test_language_switch_is_remembered(trial, client):
    inv = invite(language="en")
    assert "提交我的回答" in client.get(inv.url + "?lang=zh").get_data(as_text=True)
    assert "提交我的回答" in client.get(inv.url).get_data(as_text=True)  # kept in the session
    html = client.get(inv.url + "?lang=en").get_data(as_text=True)
    assert "Send my answers" in html and 'href="?lang=zh"' in html


def test_page_budget_and_no_other_hosts(trial, client):
    for lang in ("en", "zh"):
        response = client.get(invite(language=lang).url)
        html = response.get_data(as_text=True)
        c = parse(html)
        assert not c.external and not c.inline_scripts and c.style_attrs == 0
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        bodies = [fetch(client, a) for a in assets]
        total = len(response.data) + sum(len(b) for b in bodies)
        assert total < 30 * 1024, f"{lang}: {total} bytes"
        assert not any(b"@font-face" in b or b"@import" in b or b"url(http" in b for b in bodies)


def test_questionnaire_not_yet_fetched_is_a_friendly_503(app, client):
    inv = invite()
    response = client.get(inv.url)
    assert response.status_code == 503
    assert "not available" in response.get_data(as_text=True)


@pytest.mark.parametrize("bad", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'])
def test_typed_free_text_is_kept_and_escaped(trial, client, bad):
    inv = invite()
    response = client.post(inv.url, data={"fu_comments": bad, "fu_fever": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert bad not in html
    from markupsafe import escape

    assert str(escape(bad)) in html


def test_no_js_text_for_other_logic_shapes(wellbeing):
    html = wellbeing.test_client().get(invite().url).get_data(as_text=True)
    assert (
        "“Mobility today” is “I have moderate problems, some days, in walking about” or an answer after it"
        in html
    )
    assert "“Someone else” is ticked for “Who helps you at home?”" in html
    assert "“Steps walked yesterday” is less than 500" in html
    assert "“Email address” is not answered" in html
