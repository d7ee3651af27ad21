"""A small OData ``$filter`` parser that compiles to a SQLite WHERE clause.

Supported: ``eq ne gt ge lt le``, ``and or not``, parentheses, string / number / Boolean / null /
GUID literals, ``contains``/``startswith``/``endswith``, and the Web API query function
``Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=[...])``. String comparisons are
case-insensitive, as in Dataverse (SQL Server's default collation). Anything else is a 400.

``PropertyValues`` is a JSON array, read as the OData library's JSON reader reads it: strings
in double quotes (the documented form, with ``\\`` escapes), or in single quotes without the
``''`` doubling of OData literals. So ``['o''brien']`` fails exactly as filter-rows.md
("Manage single quotes") shows: "Invalid JSON. A comma character ',' was expected in scope
'Array'. ...".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<array>\[)"
    r"|(?P<punct>[(),=]))"
)
COMMA_EXPECTED = (
    "The query specified in the URI is not valid. Invalid JSON. A comma character ',' was "
    "expected in scope 'Array'. Every two elements in an array and properties of an object "
    "must be separated by commas."
)
OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
IN_FUNCTION = "microsoft.dynamics.crm.in"


class FilterError(ValueError):
    """The filter cannot be parsed, or names an unknown property."""


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"Syntax error at position {position} in '{text[:200]}'")
        kind = match.lastgroup or ""
        if kind == "array":
            end = _array_end(text, match.end())
            tokens.append((kind, text[match.end() - 1 : end]))
            position = end
        else:
            tokens.append((kind, match.group(kind)))
            position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


def _array_end(text: str, position: int) -> int:
    """The index after the ``]`` closing the array opened just before *position*."""
    quote = None
    while position < len(text):
        char = text[position]
        if quote:
            if char == "\\":
                position += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "]":
            return position + 1
        position += 1
    raise FilterError("Invalid JSON. Unterminated array in $filter")


def json_array(text: str) -> list[object]:
    """The values of a ``PropertyValues`` array (see the module docstring)."""
    position, values = 1, []

    def skip() -> None:
        nonlocal position
        while position < len(text) and text[position].isspace():
            position += 1

    skip()
    if text[position] == "]":
        return values
    while True:
        skip()
        char = text[position]
        if char in "'\"":
            end, raw = position + 1, []
            while text[end] != char:
                if text[end] == "\\":
                    raw.append(text[end : end + 2])
                    end += 2
                    continue
                raw.append('\\"' if text[end] == '"' else text[end])
                end += 1
            values.append(json.loads('"' + "".join(raw) + '"'))
            position = end + 1
        else:
            match = re.compile(r"[^,\]\s]+").match(text, position)
            if not match:
                raise FilterError(COMMA_EXPECTED)
            try:
                values.append(json.loads(match.group(0)))
            except ValueError:
                raise FilterError(COMMA_EXPECTED) from None
            position = match.end()
        skip()
        if text[position] == "]":
            return values
        if text[position] != ",":
            raise FilterError(COMMA_EXPECTED)
        position += 1


def compile_filter(text: str, column: Callable[..., str]) -> tuple[str, list[object]]:
    """SQL text and parameters for *text*; *column* maps a property name to an SQL expression
    (a quoted column, or NULL for an attribute nothing has stored yet) or raises."""
    parser = _Parser(tokenize(text), column)
    sql = parser.expression()
    if parser.position != len(parser.tokens):
        raise FilterError(f"Unexpected '{parser.tokens[parser.position][1]}' in $filter")
    return sql, parser.params


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], column: Callable[..., str]):
        self.tokens = tokens
        self.position = 0
        self.column = column
        self.params: list[object] = []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1].lower() != value.lower()):
            raise FilterError(
                f"Expected '{value}' in $filter, found {token[1] if token else 'end'}"
            )
        self.position += 1
        return token

    def expression(self) -> str:
        left = self.conjunction()
        while (t := self.peek()) and t[0] == "name" and t[1].lower() == "or":
            self.take()
            left = f"({left} OR {self.conjunction()})"
        return left

    def conjunction(self) -> str:
        left = self.unary()
        while (t := self.peek()) and t[0] == "name" and t[1].lower() == "and":
            self.take()
            left = f"({left} AND {self.unary()})"
        return left

    def unary(self) -> str:
        token = self.peek()
        if token and token[0] == "name" and token[1].lower() == "not":
            self.take()
            return f"(NOT {self.unary()})"
        if token and token[1] == "(":
            self.take("(")
            inner = self.expression()
            self.take(")")
            return inner
        return self.primary()

    def primary(self) -> str:
        kind, name = self.take()
        if kind != "name":
            raise FilterError(f"Expected a property or function in $filter, found {name}")
        lowered = name.lower()
        if lowered == IN_FUNCTION:
            return self.in_function()
        if lowered in ("contains", "startswith", "endswith"):
            self.take("(")
            column = self.column(self.take()[1])
            self.take(",")
            value = str(self.literal())
            self.take(")")
            pattern = {"contains": "%{}%", "startswith": "{}%", "endswith": "%{}"}[lowered]
            self.params.append(pattern.format(value.replace("%", r"\%").replace("_", r"\_")))
            return f"({column} LIKE ? ESCAPE '\\')"
        column = self.column(name)
        operator = self.take()[1].lower()
        if operator not in OPERATORS:
            raise FilterError(f"Unknown operator '{operator}' in $filter")
        value = self.literal()
        if value is None:
            if operator not in ("eq", "ne"):
                raise FilterError("null compares only with eq and ne")
            return f"({column} IS {'NOT ' if operator == 'ne' else ''}NULL)"
        self.params.append(value)
        return f"({column} {OPERATORS[operator]} ? COLLATE NOCASE)"

    def in_function(self) -> str:
        self.take("(")
        self.take("PropertyName")
        self.take("=")
        column = self.column(str(self.literal()), in_function=True)
        self.take(",")
        self.take("PropertyValues")
        self.take("=")
        kind, text = self.take()
        if kind != "array":
            raise FilterError("PropertyValues must be a JSON array of values")
        values = json_array(text)
        self.take(")")
        if not values:
            raise FilterError("PropertyValues must not be empty")
        self.params += values
        marks = ",".join("?" * len(values))
        return f"({column} COLLATE NOCASE IN ({marks}))"

    def literal(self) -> object:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "guid":
            return text
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "name" and text.lower() in ("true", "false"):
            return 1 if text.lower() == "true" else 0
        if kind == "name" and text.lower() == "null":
            return None
        raise FilterError(f"Expected a literal in $filter, found {text}")
