"""Branching logic as a sentence for the no-JavaScript page: "Answer only if … is “Yes”".

Without the script every question is shown, so a branching question must say, in the
participant's language and in their questions' own words, when it applies.
"""

from __future__ import annotations

from flask_babel import gettext as _

from app.questionnaire import translations as tr
from app.questionnaire.branching import BoolOp, Compare, Lit, Node, Ref
from app.questionnaire.definition import InstrumentDef
from app.questionnaire.text import plain

MAX_QUESTION = 70  # characters of a question's label quoted in the sentence

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}


def describe(node: Node, instrument: InstrumentDef, lang: str) -> str:
    """The whole "Answer only if …" sentence for a field's logic."""
    return _("Answer only if: %(condition)s", condition=_condition(node, instrument, lang, top=True))


def _condition(node: Node, instrument: InstrumentDef, lang: str, top: bool = False) -> str:
    if isinstance(node, BoolOp):
        joiner = _(" and ") if node.op == "and" else _(" or ")
        text = joiner.join(_condition(part, instrument, lang) for part in node.args)
        return text if top else f"({text})"
    return _compare(node, instrument, lang)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUESTION else text[: MAX_QUESTION - 1].rstrip() + "…"


def _question(ref: Ref, instrument: InstrumentDef, lang: str) -> str:
    fdef = instrument.field(ref.field)
    return _short(plain(tr.field_label(fdef, lang))) if fdef is not None else ref.field


def _value(ref: Ref, literal: str, instrument: InstrumentDef, lang: str) -> str:
    fdef = instrument.field(ref.field)
    if fdef is not None and fdef.has_choices and not fdef.is_checkbox and fdef.choice_label(literal):
        label = plain(tr.choice_label(fdef, literal, lang))
        fixed = fdef.type in ("yesno", "truefalse") and label in ("Yes", "No", "True", "False")
        return _(label) if fixed else label
    return literal


def _compare(node: Compare, instrument: InstrumentDef, lang: str) -> str:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, Lit) and isinstance(right, Ref):
        left, right, op = right, left, _FLIP[op]
    if not isinstance(left, Ref) or not isinstance(right, Lit):
        return _("a condition on earlier answers holds")
    question = _question(left, instrument, lang)
    if left.code is not None:
        fdef = instrument.field(left.field)
        option = tr.choice_label(fdef, left.code, lang) if fdef is not None else left.code
        ticked = (right.value.strip() in ("1", "1.0")) == (op == "=")
        if ticked:
            return _("“%(option)s” is ticked for “%(question)s”", option=_short(option), question=question)
        return _("“%(option)s” is not ticked for “%(question)s”", option=_short(option), question=question)
    if right.value == "" and op in ("=", "<>"):
        if op == "=":
            return _("“%(question)s” is not answered", question=question)
        return _("“%(question)s” is answered", question=question)
    value = _value(left, right.value, instrument, lang)
    fdef = instrument.field(left.field)
    if op in _ORDERED and fdef is not None and fdef.has_choices and value != right.value:
        # An order over a choice list reads as a position in the list, not as "more than" a label.
        return _ordered_choice(op, question, value)
    texts = {
        "=": _("“%(question)s” is “%(value)s”", question=question, value=value),
        "<>": _("“%(question)s” is not “%(value)s”", question=question, value=value),
        "<": _("“%(question)s” is less than %(value)s", question=question, value=value),
        "<=": _("“%(question)s” is %(value)s or less", question=question, value=value),
        ">": _("“%(question)s” is more than %(value)s", question=question, value=value),
        ">=": _("“%(question)s” is %(value)s or more", question=question, value=value),
    }
    return texts[op]


_ORDERED = ("<", "<=", ">", ">=")


def _ordered_choice(op: str, question: str, value: str) -> str:
    if op == ">=":
        return _("“%(question)s” is “%(value)s” or an answer after it", question=question, value=value)
    if op == ">":
        return _("“%(question)s” is an answer after “%(value)s”", question=question, value=value)
    if op == "<=":
        return _("“%(question)s” is “%(value)s” or an answer before it", question=question, value=value)
    return _("“%(question)s” is an answer before “%(value)s”", question=question, value=value)
