"""Build the participant's WTForms form at run time from a REDCap instrument definition.

Every control is named exactly after its REDCap column (a checkbox option as `field___code`)
and carries REDCap's raw codes as values, so what the browser posts is what REDCap stores.
The form renders and keeps typed answers; `answers.clean_answers` stays the judge of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, Field, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; its stubs are 3.2
from wtforms.form import BaseForm
from wtforms.widgets import NumberInput

from app.questionnaire import translations as tr
from app.questionnaire.branching import to_json
from app.questionnaire.definition import FieldDef, InstrumentDef
from app.questionnaire.only_if import describe
from app.questionnaire.text import plain
from app.questionnaire.validation import resolve_bound

# Sliders the participant leaves at "no answer" are listed here (no REDCap field starts with "_"). Only the
# script's slider sends it: without JavaScript a slider is a number box, and a blank box is no answer.
UNANSWERED = "_unanswered"
# input_kind -> (input type, inputmode, step)
_INPUTS: dict[str, tuple[str, str | None, str | None]] = {
    "integer": ("number", "numeric", "1"),
    "number": ("number", "decimal", "any"),
    "date": ("date", None, None),
    "email": ("email", "email", None),
    "phone": ("tel", "tel", None),
}


@dataclass
class Option:
    """One choice of a radio or checkbox question, with the WTForms control that renders it."""

    code: str
    label: str
    control: Any


@dataclass
class Question:
    """What the template needs to render one REDCap field."""

    name: str
    kind: str  # input | textarea | radio | select | checkbox | slider | descriptive
    label: str
    note: str = ""
    section: str = ""
    required: bool = False
    readonly: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    options: list[Option] = field(default_factory=list)
    slider_labels: list[str | None] = field(default_factory=list)
    range_hint: str = ""  # a slider without JavaScript: "Enter a number from 0 to 100…"
    only_if: str = ""
    has_logic: bool = False
    control: Field | None = None
    error: str = ""
    unanswered: bool = False

    @property
    def described_by(self) -> str:
        """Ids of the note, the "answer only if" text and the error, for aria-describedby."""
        ids = [f"note-{self.name}"] if self.note else []
        ids += [f"range-{self.name}"] if self.kind == "slider" else []
        ids += [f"if-{self.name}"] if self.only_if else []
        ids += [f"err-{self.name}"] if self.error else []
        return " ".join(ids)

    @property
    def dom_id(self) -> str:
        """The id the error summary links to: the question's first control."""
        if self.options:
            first: str = self.options[0].control.id
            return first
        return self.control.id if self.control is not None else f"q-{self.name}"


def choice_list(fdef: FieldDef, lang: str) -> list[tuple[str, str]]:
    """(code, label) pairs in the participant's language; yes/no labels fall back to our catalogue."""
    out = []
    for choice in fdef.choices:
        label = tr.choice_label(fdef, choice.code, lang)
        if label == choice.label and fdef.type in ("yesno", "truefalse"):
            label = _(label)  # "Yes"/"No"/"True"/"False" are in the gettext catalogue
        out.append((choice.code, plain(label)))
    return out


def _input_attrs(fdef: FieldDef, today: date) -> dict[str, Any]:
    input_type, inputmode, step = _INPUTS.get(fdef.input_kind, ("text", None, None))
    attrs: dict[str, Any] = {"type": input_type}
    if inputmode:
        attrs["inputmode"] = inputmode
    if step:
        attrs["step"] = step
    if input_type in ("number", "date"):
        low, high = fdef.bounds
        if low:
            attrs["min"] = resolve_bound(fdef.validation or "", low, today)
        if high:
            attrs["max"] = resolve_bound(fdef.validation or "", high, today)
    if input_type == "date":
        attrs["placeholder"] = "YYYY-MM-DD"
    if fdef.input_kind == "email":
        attrs["autocomplete"] = "email"
    elif fdef.input_kind == "phone":
        attrs["autocomplete"] = "tel"
    else:
        attrs["autocomplete"] = "off"
    return attrs


def _wtf_fields(fdef: FieldDef, lang: str) -> list[tuple[str, Field]]:
    """The unbound WTForms fields of one REDCap field (one per option for a checkbox)."""
    label = plain(tr.field_label(fdef, lang))
    kind = fdef.input_kind
    if kind == "descriptive" or fdef.survey_hidden:
        return []
    if kind == "checkbox":
        return [(fdef.column(code), BooleanField(text)) for code, text in choice_list(fdef, lang)]
    options = [SelectChoice(code, text) for code, text in choice_list(fdef, lang)]
    if kind == "radio":
        return [(fdef.name, RadioField(label, choices=options, validate_choice=False))]
    if kind == "select":
        choices = [SelectChoice("", _("Choose…")), *options]
        return [(fdef.name, SelectField(label, choices=choices, validate_choice=False))]
    if kind == "textarea":
        return [(fdef.name, TextAreaField(label))]
    if kind == "slider":
        # A number box the script turns into a range (a range always has a value, a box can be blank).
        return [(fdef.name, StringField(label, widget=NumberInput()))]
    return [(fdef.name, StringField(label))]


_unbound: OrderedDict[tuple[str, str, str], tuple[Any, list[tuple[str, Field]]]] = OrderedDict()
_lock = threading.Lock()


def unbound_fields(instrument: InstrumentDef, lang: str) -> list[tuple[str, Field]]:
    """The instrument's unbound WTForms fields in `lang`, built once per version, language and
    translation file content (WTForms binds a fresh copy to every form)."""
    texts = tr.load_translations()
    key = (instrument.name, instrument.version_hash, lang)
    with _lock:
        hit = _unbound.get(key)
    if hit is not None and hit[0] is texts:
        return hit[1]
    fields: list[tuple[str, Field]] = []
    for fdef in instrument.fields:
        fields.extend(_wtf_fields(fdef, lang))
    with _lock:
        _unbound[key] = (texts, fields)
        _unbound.move_to_end(key)
        while len(_unbound) > 32:
            _unbound.popitem(last=False)
    return fields


class QuestionnaireForm(BaseForm):
    """A run-time WTForms form over REDCap column names (BaseForm, so a field may be called `data`)."""

    def __init__(
        self,
        instrument: InstrumentDef,
        lang: str,
        formdata: Mapping[str, Any] | None,
        today: date,
    ):
        self.instrument = instrument
        self.lang = lang
        self.today = today  # the participant's local date: resolves 'today' in date ranges
        # The stubs type a field built outside a form as its Field class; it is an UnboundField.
        super().__init__(unbound_fields(instrument, lang), prefix="")  # type: ignore[arg-type]
        data = None if formdata is None else _multidict(formdata)
        self.process(data)
        self.submitted = data is not None
        self.unanswered = set(data.getlist(UNANSWERED)) if data is not None else set()

    def questions(self, errors: Mapping[str, str] | None = None) -> list[Question]:
        """The view model of every shown field, in REDCap's order, errors placed next to their field."""
        errors = errors or {}
        return [self._question(f, errors) for f in self.instrument.fields if not f.survey_hidden]

    def _question(self, fdef: FieldDef, errors: Mapping[str, str]) -> Question:
        lang = self.lang
        q = Question(
            name=fdef.name,
            kind=fdef.input_kind,
            label=plain(tr.field_label(fdef, lang)),
            note=plain(tr.field_note(fdef, lang)),
            section=plain(tr.section_header(fdef, lang)),
            required=fdef.required and not fdef.is_descriptive,
            readonly=fdef.survey_readonly,
            error=errors.get(fdef.name, ""),
        )
        if fdef.logic is not None:
            q.has_logic = True
            q.only_if = describe(fdef.logic, self.instrument, lang)
        if q.kind == "descriptive":
            return q
        if q.kind == "checkbox":
            q.options = [
                Option(code, text, self[fdef.column(code)]) for code, text in choice_list(fdef, lang)
            ]
        elif q.kind == "radio":
            q.control = self[fdef.name]
            # A radio question's control is a RadioField, whose items are its options.
            q.options = [Option(sub.data, sub.label.text, sub) for sub in cast(RadioField, q.control)]
        elif q.kind in ("select", "textarea"):
            q.control = self[fdef.name]
        elif q.kind == "slider":
            self._slider(q, fdef)
        else:
            q.control = self[fdef.name]
            q.attrs = _input_attrs(fdef, self.today)
            q.kind = "input"
        if q.readonly:
            q.attrs["disabled"] = True
        if q.error:
            q.attrs["aria-invalid"] = "true"
        if q.described_by and q.kind not in ("radio", "checkbox"):
            q.attrs["aria-describedby"] = q.described_by
        return q

    def _slider(self, q: Question, fdef: FieldDef) -> None:
        """A whole-number box from min to max (0–100 by default), marked for the script to make a slider."""
        q.control = self[fdef.name]
        low, high = fdef.bounds
        q.attrs = {"min": low, "max": high, "step": 1, "inputmode": "numeric", "autocomplete": "off"}
        q.attrs["data-slider"] = True  # questionnaire.js makes it a range input
        labels: list[str | None] = [plain(x) for x in tr.slider_labels(fdef, self.lang) or ()]
        q.slider_labels = labels or [low, "", high]
        if labels and labels[0] and labels[-1]:
            q.range_hint = _(
                "Enter a whole number from %(low)s (%(low_label)s) to %(high)s (%(high_label)s).",
                low=low,
                low_label=labels[0],
                high=high,
                high_label=labels[-1],
            )
        else:
            q.range_hint = _("Enter a whole number from %(low)s to %(high)s.", low=low, high=high)
        value = (q.control.data or "").strip()
        q.unanswered = not value or fdef.name in self.unanswered
        if q.unanswered:
            # blank until answered (the script's slider starts mid-way, with "No answer yet" ticked)
            q.attrs["value"] = ""

    @staticmethod
    def answers_input(formdata: Mapping[str, Any]) -> MultiDict[str, Any]:
        """The posted data without sliders left at "no answer", ready for `clean_answers`."""
        data = _multidict(formdata).copy()
        for name in data.getlist(UNANSWERED):
            data.poplist(name)
        data.poplist(UNANSWERED)
        return data


def _multidict(data: Mapping[str, Any]) -> MultiDict[str, Any]:
    return data if isinstance(data, MultiDict) else MultiDict(data)


def logic_map(instrument: InstrumentDef) -> dict[str, Any]:
    """{field name: branching AST} for the browser script; fields without logic are left out."""
    return {f.name: to_json(f.logic) for f in instrument.fields if f.logic is not None}
