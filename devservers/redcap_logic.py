"""A small evaluator for REDCap's conditional logic, enough for the API's `filterLogic` parameter.

Supported: `[field]`, `[event][field]`, checkbox `[field(code)]`, quoted strings, numbers, parentheses,
`= == <> != < > <= >=`, and case-insensitive `and` / `or` / `not`. Like REDCap, two numeric operands compare
as numbers, anything else compares as text, and an ordering comparison with a blank side is false.
Functions (datediff, sum, ...) and smart variables are not supported and are rejected as invalid logic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Looks up a value: (event or None for "this row's event", field name, checkbox code or None) -> value.
Lookup = Callable[[str | None, str, str | None], str]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<ref>(?:\[[a-z0-9_]+\])?\[[a-z0-9_]+(?:\([A-Za-z0-9_.-]+\))?\])
      | (?P<str>'[^']*'|"[^"]*")
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><>|!=|<=|>=|==|=|<|>)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_]+)
    )""",
    re.VERBOSE,
)
_REF = re.compile(r"^(?:\[(?P<event>[a-z0-9_]+)\])?\[(?P<field>[a-z0-9_]+)(?:\((?P<code>[^)]+)\))?\]$")


class LogicError(ValueError):
    """The logic string cannot be parsed or names something that does not exist."""


@dataclass(frozen=True)
class Ref:
    event: str | None
    field: str
    code: str | None


@dataclass(frozen=True)
class Literal:
    value: str


@dataclass(frozen=True)
class Compare:
    left: object
    op: str
    right: object


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or" | "not"
    parts: tuple[object, ...]


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise LogicError(f"Unexpected text at position {pos}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def word(self, value: str) -> bool:
        kind, text = self.peek()
        return kind == "word" and text.lower() == value

    def parse(self) -> object:
        node = self.or_expr()
        if self.peek()[0] != "end":
            raise LogicError(f"Unexpected {self.peek()[1]!r}")
        return node

    def or_expr(self) -> object:
        parts = [self.and_expr()]
        while self.word("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> object:
        parts = [self.not_expr()]
        while self.word("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self) -> object:
        if self.word("not"):
            self.take()
            return BoolOp("not", (self.not_expr(),))
        return self.comparison()

    def comparison(self) -> object:
        left = self.operand()
        if self.peek()[0] == "op":
            op = self.take()[1]
            return Compare(left, {"==": "=", "!=": "<>"}.get(op, op), self.operand())
        return left

    def operand(self) -> object:
        kind, text = self.take()
        if kind == "paren" and text == "(":
            node = self.or_expr()
            if self.take() != ("paren", ")"):
                raise LogicError("Missing closing parenthesis")
            return node
        if kind == "ref":
            m = _REF.match(text)
            assert m is not None
            return Ref(m["event"], m["field"], m["code"])
        if kind == "str":
            return Literal(text[1:-1])
        if kind == "num":
            return Literal(text)
        raise LogicError(f"Unexpected {text!r}" if text else "Unexpected end of logic")


def parse(text: str) -> object:
    """Parse logic into a small tree; raises LogicError for anything unsupported."""
    return _Parser(tokenize(text)).parse()


def refs(node: object) -> list[Ref]:
    """Every field reference in a parsed tree, so callers can check the names exist."""
    if isinstance(node, Ref):
        return [node]
    if isinstance(node, Compare):
        return refs(node.left) + refs(node.right)
    if isinstance(node, BoolOp):
        return [r for part in node.parts for r in refs(part)]
    return []


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _value(node: object, lookup: Lookup) -> str:
    if isinstance(node, Ref):
        return lookup(node.event, node.field, node.code)
    if isinstance(node, Literal):
        return node.value
    return "1" if evaluate(node, lookup) else "0"


def evaluate(node: object, lookup: Lookup) -> bool:
    """Evaluate a parsed tree against one record-event, reading values through `lookup`."""
    if isinstance(node, BoolOp):
        if node.op == "not":
            return not evaluate(node.parts[0], lookup)
        results = (evaluate(part, lookup) for part in node.parts)
        return all(results) if node.op == "and" else any(results)
    if isinstance(node, Compare):
        left, right = _value(node.left, lookup), _value(node.right, lookup)
        a, b = _number(left), _number(right)
        if node.op in {"=", "<>"}:
            equal = a == b if a is not None and b is not None else left == right
            return equal if node.op == "=" else not equal
        if a is None or b is None:
            return False if left == "" or right == "" else _ordered(node.op, left, right)
        return _ordered(node.op, a, b)
    value = _value(node, lookup)
    return value not in {"", "0"}


def _ordered(op: str, a: float | str, b: float | str) -> bool:
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
