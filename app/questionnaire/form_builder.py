"""Build the participant's WTForms form at run time from a REDCap instrument definition.

Every control is named exactly after its REDCap field (a checkbox option as `field___code`)
and carries REDCap's raw codes as values, so what the browser posts is what REDCap stores.
The form renders and keeps typed answers; `answers.clean_answers` stays the judge of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, Field, RadioField, SelectField, StringField, TextAreaField
from wtforms.form import BaseForm
from wtforms.widgets import RangeInput

from app.questionnaire import translations as tr
from app.questionnaire.branching_text import describe
from app.questionnaire.definition import FieldDef, InstrumentDef

UNANSWERED = "_unanswered"  # checkbox list naming sliders left unanswered (no REDCap field starts with _)
_TAG = re.compile(r"<[^>]*>")

# REDCap text validations → (input type, inputmode, step)
_TEXT_INPUTS: dict[str, tuple[str, str | None, str | None]] = {
    "integer": ("number", "numeric", "1"),
    "number": ("number", "decimal", "any"),
    "date_ymd": ("date", None, None),
    "email": ("email", "email", None),
    "phone": ("tel", "tel", None),
}
_CHOICE_TYPES = ("radio", "dropdown", "yesno", "truefalse", "checkbox")


def plain(text: str | None) -> str:
    """REDCap labels may hold rich-text HTML; the page shows them as plain, escaped text."""
    return unescape(_TAG.sub("", text or "")).strip()


@dataclass
class Option:
    """One choice of a radio, dropdown or checkbox question, with its control's name and id."""

    code: str
    label: str
    name: str
    control: Any = None  # the WTForms subfield or BooleanField that renders it


@dataclass
class Question:
    """What the template needs to render one REDCap field."""

    name: str
    kind: str  # input | textarea | radio | select | checkbox | slider | descriptive
    label: str
    note: str = ""
    section: str = ""
    required: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    options: list[Option] = field(default_factory=list)
    slider_labels: list[str] = field(default_factory=list)
    only_if: str = ""
    has_logic: bool = False
    control: Field | None = None
    error: str = ""
    unanswered: bool = False

    @property
    def dom_id(self) -> str:
        """The id the error summary links to: the first control of the question."""
        if self.options:
            return self.options[0].control.id
        return self.name if self.kind != "descriptive" else f"q-{self.name}"


def choice_list(fdef: FieldDef, lang: str) -> list[tuple[str, str]]:
    """(code, label) pairs in the participant's language; yesno/truefalse get REDCap's fixed codes."""
    choices = [(str(_code(c)), str(_label(c))) for c in (fdef.choices or [])]
    if not choices and fdef.type == "yesno":
        choices = [("1", "Yes"), ("0", "No")]
    if not choices and fdef.type == "truefalse":
        choices = [("1", "True"), ("0", "False")]
    out = []
    for code, label in choices:
        translated = tr.choice_label(fdef, code, lang)
        if translated == label and fdef.type in ("yesno", "truefalse") and lang != "en":
            with force_locale(lang):
                translated = _(label)
        out.append((code, plain(translated)))
    return out


def _code(choice: Any) -> Any:
    return choice.code if hasattr(choice, "code") else choice[0]


def _label(choice: Any) -> Any:
    return choice.label if hasattr(choice, "label") else choice[1]


def _text_attrs(fdef: FieldDef) -> dict[str, Any]:
    input_type, inputmode, step = _TEXT_INPUTS.get(fdef.validation or "", ("text", None, None))
    attrs: dict[str, Any] = {"type": input_type}
    if inputmode:
        attrs["inputmode"] = inputmode
    if step:
        attrs["step"] = step
    if input_type in ("number", "date"):
        for key in ("min", "max"):
            value = getattr(fdef, key, None)
            if value not in (None, ""):
                attrs[key] = value
    if input_type == "text":
        attrs["autocomplete"] = "off"
    return attrs


def _wtf_fields(fdef: FieldDef, lang: str) -> list[tuple[str, Field]]:
    """The unbound WTForms fields of one REDCap field (several for a checkbox)."""
    label = plain(tr.field_label(fdef, lang))
    kind = fdef.type
    if kind == "checkbox":
        return [(f"{fdef.name}___{code}", BooleanField(text)) for code, text in choice_list(fdef, lang)]
    if kind in ("radio", "yesno", "truefalse"):
        return [(fdef.name, RadioField(label, choices=choice_list(fdef, lang), validate_choice=False))]
    if kind == "dropdown":
        choices = [("", _("Choose…")), *choice_list(fdef, lang)]
        return [(fdef.name, SelectField(label, choices=choices, validate_choice=False))]
    if kind == "notes":
        return [(fdef.name, TextAreaField(label))]
    if kind == "slider":
        return [(fdef.name, StringField(label, widget=RangeInput()))]
    if kind == "descriptive":
        return []
    return [(fdef.name, StringField(label))]


class QuestionnaireForm(BaseForm):
    """A run-time WTForms form over REDCap field names (BaseForm: a field may be called `data`)."""

    def __init__(self, instrument: InstrumentDef, lang: str, formdata: Mapping[str, Any] | None = None):
        self.instrument = instrument
        self.lang = lang
        fields: list[tuple[str, Field]] = []
        for fdef in instrument.fields:
            fields.extend(_wtf_fields(fdef, lang))
        super().__init__(fields, prefix="")
        data = formdata if formdata is None or isinstance(formdata, MultiDict) else MultiDict(formdata)
        self.process(data)
        self.unanswered = set(data.getlist(UNANSWERED)) if data is not None else set()
        self.submitted = data is not None

    def questions(self, errors: Mapping[str, str] | None = None) -> list[Question]:
        """The view model of every field, in REDCap order, with errors placed next to their field."""
        errors = errors or {}
        out: list[Question] = []
        for fdef in self.instrument.fields:
            out.append(self._question(fdef, errors))
        return out

    def _question(self, fdef: FieldDef, errors: Mapping[str, str]) -> Question:
        lang = self.lang
        q = Question(
            name=fdef.name,
            kind="input",
            label=plain(tr.field_label(fdef, lang)),
            note=plain(tr.field_note(fdef, lang)),
            section=plain(tr.section_header(fdef, lang)),
            required=bool(fdef.required) and fdef.type != "descriptive",
            error=errors.get(fdef.name, ""),
        )
        logic = getattr(fdef, "logic", None)
        if logic is not None:
            q.has_logic = True
            q.only_if = describe(logic, self.instrument, lang)
        kind = fdef.type
        if kind == "descriptive":
            q.kind = "descriptive"
        elif kind == "checkbox":
            q.kind = "checkbox"
            q.options = [
                Option(code, text, f"{fdef.name}___{code}", self[f"{fdef.name}___{code}"])
                for code, text in choice_list(fdef, lang)
            ]
        elif kind in ("radio", "yesno", "truefalse"):
            q.kind = "radio"
            q.control = self[fdef.name]
            q.options = [Option(sub.data, sub.label.text, fdef.name, sub) for sub in q.control]
        elif kind == "dropdown":
            q.kind, q.control = "select", self[fdef.name]
        elif kind == "notes":
            q.kind, q.control = "textarea", self[fdef.name]
        elif kind == "slider":
            q.kind, q.control = "slider", self[fdef.name]
            q.attrs = {"min": 0, "max": 100, "step": 1}
            labels = tr.slider_labels(fdef, lang) if hasattr(tr, "slider_labels") else fdef.slider_labels
            q.slider_labels = [plain(x) for x in (labels or [])]
            value = (q.control.data or "").strip()
            q.unanswered = not value or (self.submitted and fdef.name in self.unanswered)
            if q.unanswered:
                q.attrs["value"] = 50
        else:
            q.control = self[fdef.name]
            q.attrs = _text_attrs(fdef)
        if q.error:
            q.attrs["aria-invalid"] = "true"
            q.attrs["aria-describedby"] = f"err-{fdef.name}"
        return q

    def answers_input(self, formdata: Mapping[str, Any]) -> MultiDict:
        """The posted data minus sliders the participant marked unanswered, for `clean_answers`."""
        data = MultiDict(formdata) if not isinstance(formdata, MultiDict) else formdata.copy()
        for name in data.getlist(UNANSWERED):
            data.poplist(name)
        data.poplist(UNANSWERED)
        data.poplist("csrf_token")
        return data


def logic_map(instrument: InstrumentDef) -> dict[str, Any]:
    """{field name: branching AST as JSON} for the browser script (fields without logic left out)."""
    from app.questionnaire.branching import to_json

    return {f.name: to_json(f.logic) for f in instrument.fields if getattr(f, "logic", None) is not None}


def required_mark() -> Markup:
    """The visual required marker; the text for screen readers is in the label."""
    return Markup('<span class="req" aria-hidden="true">*</span>')
