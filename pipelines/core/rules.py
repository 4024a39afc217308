"""Tag rules from config text, parsed without ever evaluating it.

A rule is ``column OP literal``, or several joined by ``and``: OP is one of ``< <= > >= == !=`` with a
number or a quoted string, or ``in`` / ``not in`` with a bracketed list of them, e.g.
``age < 30 and marital_status == 'Married-civ-spouse'`` or ``occupation in ['Sales', 'Tech-support']``.
A column whose name is not a word goes in backticks, as in ``pandas.query``: ```mean radius` > 15``.
Config text is only tokenised and matched against this grammar; nothing is handed to ``eval``,
``pandas.query`` or ``ast``, so no rule can run code.
"""

from __future__ import annotations

import re
from typing import NamedTuple

COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
MEMBERSHIP = ("in", "not in")
KEYWORDS = {"and", "in", "not"}
Value = float | str

_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<string>'[^']*'|\"[^\"]*\")"
    r"|(?P<op><=|>=|==|!=|<|>)"
    r"|(?P<punct>[\[\],])"
    r"|(?P<word>[A-Za-z_]\w*)"
    r"|(?P<column>`[^`]+`))"
)


class Condition(NamedTuple):
    """One ``column OP literal`` clause; ``value`` is a tuple for ``in`` and ``not in``."""

    column: str
    op: str
    value: Value | tuple[Value, ...]


class _Token(NamedTuple):
    kind: str
    text: str
    at: int


def _tokens(text: str) -> list[_Token]:
    found, at = [], 0
    while text[at:].strip():
        match = _TOKEN.match(text, at)
        if not match:
            stripped = len(text) - len(text[at:].lstrip())
            raise ValueError(f"unexpected text at position {stripped}: {text[stripped:][:20]!r}")
        kind = match.lastgroup or ""
        found.append(_Token(kind, match.group(kind), match.start(kind)))
        at = match.end()
    return found


class _Cursor:
    def __init__(self, text: str) -> None:
        self.tokens, self.i = _tokens(text), 0

    def peek(self, ahead: int = 0) -> _Token | None:
        return self.tokens[self.i + ahead] if self.i + ahead < len(self.tokens) else None

    def take(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise ValueError(f"expected {expected} at the end of the rule")
        self.i += 1
        return token

    def fail(self, token: _Token, expected: str) -> ValueError:
        return ValueError(f"expected {expected} at position {token.at}, got {token.text!r}")


def _literal(cursor: _Cursor, after: str) -> Value:
    expected = f"a number or a quoted string after {after!r}"
    token = cursor.take(expected)
    if token.kind == "number":
        return float(token.text)
    if token.kind == "string":
        return token.text[1:-1]
    raise cursor.fail(token, expected)


def _values(cursor: _Cursor, op: str) -> tuple[Value, ...]:
    token = cursor.take(f"'[' after {op!r}")
    if token.text != "[":
        raise cursor.fail(token, f"'[' after {op!r}")
    values = [_literal(cursor, "[")]
    while (token := cursor.take("',' or ']'")).text != "]":
        if token.text != ",":
            raise cursor.fail(token, "',' or ']'")
        values.append(_literal(cursor, ","))
    return tuple(values)


def _condition(cursor: _Cursor) -> Condition:
    token = cursor.take("a column name")
    if token.kind == "column":
        column = token.text[1:-1]
    elif token.kind == "word" and token.text not in KEYWORDS:
        column = token.text
    else:
        raise cursor.fail(token, "a column name")
    token = cursor.take(f"an operator after {column!r}")
    if token.kind == "op":
        return Condition(column, token.text, _literal(cursor, token.text))
    if token.text == "not" and (following := cursor.peek()) is not None and following.text == "in":
        cursor.i += 1
        return Condition(column, "not in", _values(cursor, "not in"))
    if token.text == "in":
        return Condition(column, "in", _values(cursor, "in"))
    raise cursor.fail(token, f"one of {', '.join(COMPARISONS + MEMBERSHIP)} after {column!r}")


def parse_rule(text: str) -> tuple[Condition, ...]:
    """The conditions of ``text``, all of which a row must meet.

    Raises:
        ValueError: saying what was expected where, e.g. ``expected a number or a quoted string after '<'``.
    """
    cursor = _Cursor(text)
    if not cursor.tokens:
        raise ValueError("the rule is empty")
    conditions = [_condition(cursor)]
    while (token := cursor.peek()) is not None:
        if token.text != "and":
            raise cursor.fail(token, "'and' or the end of the rule")
        cursor.i += 1
        conditions.append(_condition(cursor))
    return tuple(conditions)
