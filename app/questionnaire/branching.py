"""REDCap branching logic: a real tokenizer and recursive-descent parser (never `eval`) and its evaluator.

Supported syntax (what REDCap documents for branching logic):
    [field] = 'v'   [field] = "v"   [field] = 3   [field] <> ''   [field(code)] = '1'
    operators = == <> != < <= > >= ; and / or (any case; `and` binds tighter than `or`); parentheses.
Refused with LogicError (its message gives the 1-based character position): other events
`[event][field]`, smart variables, functions, arithmetic, `not`, a bare value without a comparison.

Semantics (the same in Python and in the patient page's script):
  * a field's value is its raw REDCap code or text; a missing value is '' ; a checkbox option
    (`[f(code)]`, column `f___code`) is '1' when ticked and '0' otherwise (never blank);
  * a value is *numeric* when it matches ^[-+]?(\\d+\\.?\\d*|\\.\\d+)$ (no spaces, no exponent);
  * `=` / `<>`: numeric comparison when both sides are numeric ('1' = '1.0'), else exact text comparison;
    so `[f] = ''` is true exactly when f is blank;
  * `<` `<=` `>` `>=`: false when either side is blank; numeric when both sides are numeric; otherwise
    text comparison by code point (ISO dates compare correctly as text);
  * `and` / `or` as usual.

JSON AST (`to_json`), which the patient page's browser script evaluates with the semantics above:
    node := {"op": "and" | "or", "args": [node, node, ...]}            (two or more args)
          | {"op": "=" | "<>" | "<" | "<=" | ">" | ">=", "left": term, "right": term}
    term := {"col": "<REDCap column>", "field": "<field name>"}            a plain field
          | {"col": "<field>___<code>", "field": "<field>", "code": "<code>"}  a checkbox option ('1'/'0')
          | {"lit": "<text>"}                                             a literal (numbers as written)
`==` is given as "=" and `!=` as "<>". tests/questionnaire/branching_cases.json holds shared cases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_LOGIC_LENGTH = 20_000
MAX_DEPTH = 60
COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
_NUMBER_START = frozenset("0123456789.")
_OP_ALIASES = {"==": "=", "!=": "<>"}
_NUMERIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)", re.ASCII)
_REF_BODY = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\(([A-Za-z0-9_.\-]+)\))?", re.ASCII)


class LogicError(ValueError):
    """Branching logic that cannot be parsed or is not supported; `position` is the 0-based offset."""

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        where = f" at character {position + 1}" if position is not None else ""
        super().__init__(f"{message}{where}")


def checkbox_column(field_name: str, code: str) -> str:
    """REDCap's import/export column of one checkbox option: `field___code`, the code lower-cased with
    every character other than a-z, 0-9 and '_' made '_' (so code '-99' gives `field____99`)."""
    return f"{field_name}___{re.sub(r'[^a-z0-9_]', '_', code.lower())}"


@dataclass(frozen=True)
class Ref:
    """A field reference; `code` is set for a checkbox option `[field(code)]`."""

    field: str
    code: str | None = None

    @property
    def column(self) -> str:
        """The REDCap column holding this value."""
        return self.field if self.code is None else checkbox_column(self.field, self.code)


@dataclass(frozen=True)
class Lit:
    """A literal string or number, as written (without quotes)."""

    value: str


@dataclass(frozen=True)
class Compare:
    """`left op right` with op one of COMPARISONS."""

    op: str
    left: Ref | Lit
    right: Ref | Lit


@dataclass(frozen=True)
class BoolOp:
    """`and` / `or` over two or more parts."""

    op: str
    args: tuple[Node, ...]


Node = Compare | BoolOp


@dataclass(frozen=True)
class _Tok:
    kind: str  # ref | str | num | op | lparen | rparen | and | or | end
    text: str
    pos: int
    value: Any = None


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise LogicError("a '[' is never closed", start)
            body = text[i + 1 : end]
            m = _REF_BODY.fullmatch(body)
            if not m:
                raise LogicError(f"unsupported reference [{body[:40]}]", start)
            if tokens and tokens[-1].kind == "ref" and tokens[-1].pos + len(tokens[-1].text) == start:
                raise LogicError("references to other events ([event][field]) are not supported", start)
            tokens.append(_Tok("ref", text[start : end + 1], start, Ref(m.group(1), m.group(2))))
            i = end + 1
        elif ch in "'\"":
            end = text.find(ch, i + 1)
            if end < 0:
                raise LogicError("a quoted value is never closed", start)
            tokens.append(_Tok("str", text[start : end + 1], start, text[i + 1 : end]))
            i = end + 1
        elif ch in _NUMBER_START or (ch in "-+" and i + 1 < n and text[i + 1] in _NUMBER_START):
            m = _NUMERIC.match(text, i)
            if not m:
                raise LogicError(f"unexpected {ch!r}", start)
            tokens.append(_Tok("num", m.group(0), start, m.group(0)))
            i = m.end()
        elif ch in "<>=!":
            two = text[i : i + 2]
            if two in ("<>", "!=", "<=", ">=", "=="):
                op, i = two, i + 2
            elif ch == "!":
                raise LogicError("unexpected '!' (use <> for 'not equal')", start)
            else:
                op, i = ch, i + 1
            tokens.append(_Tok("op", op, start, _OP_ALIASES.get(op, op)))
        elif ch == "(":
            tokens.append(_Tok("lparen", ch, start))
            i += 1
        elif ch == ")":
            tokens.append(_Tok("rparen", ch, start))
            i += 1
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if word.lower() in ("and", "or"):
                tokens.append(_Tok(word.lower(), word, start))
            else:
                raise LogicError(f"unsupported word {word[:40]!r} (only 'and' and 'or' are supported)", start)
            i = j
        else:
            raise LogicError(f"unexpected {ch!r}", start)
    tokens.append(_Tok("end", "", n))
    return tokens


class _Parser:
    """Recursive descent over: or := and ('or' and)* ; and := primary ('and' primary)* ;
    primary := '(' or ')' | operand op operand ; operand := ref | string | number."""

    def __init__(self, tokens: list[_Tok]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def fail(self, tok: _Tok, expected: str) -> LogicError:
        found = "the end of the logic" if tok.kind == "end" else repr(tok.text[:40])
        pos = tok.pos
        return LogicError(f"expected {expected} but found {found}", pos)

    def parse(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(tok, "'and', 'or' or the end")
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.peek().kind == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.primary()]
        while self.peek().kind == "and":
            self.take()
            parts.append(self.primary())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise LogicError(f"parentheses nested more than {MAX_DEPTH} deep", tok.pos)
            self.take()
            node = self.or_expr()
            close = self.take()
            if close.kind != "rparen":
                raise self.fail(close, "')'")
            self.depth -= 1
            return node
        left = self.operand()
        op = self.take()
        if op.kind != "op":
            raise self.fail(op, "a comparison (=, <>, <, <=, >, >=)")
        right = self.operand()
        return Compare(op.value, left, right)

    def operand(self) -> Ref | Lit:
        tok = self.take()
        if tok.kind == "ref":
            ref: Ref = tok.value
            return ref
        if tok.kind in ("str", "num"):
            return Lit(tok.value)
        raise self.fail(tok, "a [field], a quoted value or a number")


def parse_logic(text: str) -> Node:
    """Parse REDCap branching logic into a tree; raises LogicError naming the position of the problem."""
    if not isinstance(text, str):
        raise LogicError("branching logic must be text")
    if len(text) > MAX_LOGIC_LENGTH:
        raise LogicError(f"branching logic longer than {MAX_LOGIC_LENGTH} characters")
    if not text.strip():
        raise LogicError("branching logic is empty")
    return _Parser(_tokenize(text)).parse()


def is_numeric(value: str) -> bool:
    """Whether REDCap logic treats this value as a number (see the module docstring)."""
    return _NUMERIC.fullmatch(value) is not None


def _value(term: Ref | Lit, answers: Mapping[str, str]) -> str:
    if isinstance(term, Lit):
        return term.value
    value = answers.get(term.column)
    if value is None or value == "":
        return "0" if term.code is not None else ""
    return value if isinstance(value, str) else str(value)


def _compare(op: str, left: str, right: str) -> bool:
    numeric = is_numeric(left) and is_numeric(right)
    if op in ("=", "<>"):
        equal = Decimal(left) == Decimal(right) if numeric else left == right
        return equal if op == "=" else not equal
    if left == "" or right == "":
        return False
    a: Decimal | str = Decimal(left) if numeric else left
    b: Decimal | str = Decimal(right) if numeric else right
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    return a >= b  # type: ignore[operator]


def evaluate(node: Node, answers: Mapping[str, str]) -> bool:
    """Whether the logic is true for answers keyed by REDCap column (checkbox options as `f___code`)."""
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(evaluate(part, answers) for part in node.args)
        return any(evaluate(part, answers) for part in node.args)
    return _compare(node.op, _value(node.left, answers), _value(node.right, answers))


def refs(node: Node) -> list[Ref]:
    """Every field reference in the tree, in order of appearance."""
    if isinstance(node, BoolOp):
        return [r for part in node.args for r in refs(part)]
    return [t for t in (node.left, node.right) if isinstance(t, Ref)]


def referenced_fields(node: Node) -> set[str]:
    """The base field names the logic reads, so metadata checks and the page can find its triggers."""
    return {r.field for r in refs(node)}


def _term_json(term: Ref | Lit) -> dict[str, str]:
    if isinstance(term, Lit):
        return {"lit": term.value}
    out = {"col": term.column, "field": term.field}
    if term.code is not None:
        out["code"] = term.code
    return out


def to_json(node: Node) -> dict[str, Any]:
    """The small JSON AST documented in this module's docstring, for the browser to evaluate."""
    if isinstance(node, BoolOp):
        return {"op": node.op, "args": [to_json(part) for part in node.args]}
    return {"op": node.op, "left": _term_json(node.left), "right": _term_json(node.right)}
