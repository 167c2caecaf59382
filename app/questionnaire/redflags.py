"""Red-flag rules from configuration (RED_FLAG_RULES) over a submission's cleaned answers.

A rule is `{"field": <REDCap column>, "op": "<=", "value": 93, "reason": "..."}`; ops are
<=, <, >=, >, ==, != and `in` (value a list). A malformed rule, or one naming a column the
instrument does not have, is left out with a warning: a typo in configuration must never stop
the questionnaire, and must never raise a flag on data that does not exist.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
_warned: set[str] = set()  # unknown columns already reported by this process

_ORDER: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
OPS = (*_ORDER, "==", "!=", "in")


@dataclass(frozen=True)
class Rule:
    """One checked rule; `reason` is the coordinator-facing text (never shown with answers)."""

    field: str
    op: str
    value: Any
    reason: str

    def matches(self, answers: Mapping[str, Any]) -> bool:
        """Whether the answer to `field` triggers the rule; a blank or missing answer never does."""
        answer = answers.get(self.field)
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            return False
        text = str(answer).strip()
        if self.op in _ORDER:
            left, right = _number(text), _number(self.value)
            return left is not None and right is not None and _ORDER[self.op](left, right)
        if self.op == "in":
            return any(_same(text, item) for item in self.value)
        equal = _same(text, self.value)
        return equal if self.op == "==" else not equal


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN never compares


def _same(answer: str, expected: Any) -> bool:
    """Equal as numbers when both are numbers ("4" == 4, "93.0" == 93), else as trimmed strings."""
    left, right = _number(answer), _number(expected)
    if left is not None and right is not None:
        return left == right
    return answer == str(expected).strip()


def parse_rules(raw: Any) -> list[Rule]:
    """Turn the RED_FLAG_RULES setting into rules, leaving out malformed ones with a warning each."""
    if not isinstance(raw, list):
        log.warning("RED_FLAG_RULES: expected a JSON list of rules; no red-flag rules are active")
        return []
    rules: list[Rule] = []
    for index, item in enumerate(raw):
        problem = _problem(item)
        if problem:
            log.warning("RED_FLAG_RULES[%d] ignored: %s", index, problem)
            continue
        reason = str(item.get("reason") or f"{item['field']} {item['op']} {item['value']}")
        rules.append(Rule(field=item["field"].strip(), op=item["op"], value=item["value"], reason=reason))
    return rules


def _problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "not an object"
    field, op, value = item.get("field"), item.get("op"), item.get("value")
    if not isinstance(field, str) or not field.strip():
        return "no 'field'"
    if op not in OPS:
        return f"unknown op {op!r} (use one of {', '.join(OPS)})"
    if "value" not in item:
        return "no 'value'"
    if op == "in" and not isinstance(value, list):
        return "'in' needs a list value"
    if op in _ORDER and _number(value) is None:
        return f"{op!r} needs a numeric value"
    return None


def usable_rules(rules: Iterable[Rule], columns: Iterable[str]) -> list[Rule]:
    """The rules whose column exists in the instrument; the others are skipped with a warning."""
    known = set(columns)
    kept: list[Rule] = []
    for rule in rules:
        if rule.field in known:
            kept.append(rule)
        elif rule.field not in _warned:
            _warned.add(rule.field)
            log.warning("red-flag rule on unknown field %s ignored (not in the instrument)", rule.field)
    return kept


def evaluate(rules: Iterable[Rule], answers: Mapping[str, Any]) -> list[str]:
    """The reasons of every rule the answers trigger, in rule order (empty: no red flag)."""
    return [rule.reason for rule in rules if rule.matches(answers)]


def check_configured_rules(raw: Any) -> list[Rule]:
    """Start-up check of RED_FLAG_RULES: logs each problem once, never raises."""
    try:
        return parse_rules(raw)
    except Exception:  # a start-up check must never stop the service
        log.warning("RED_FLAG_RULES could not be read; no red-flag rules are active")
        return []
