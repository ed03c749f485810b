"""The CLI's readable filter syntax, parsed into a domain Filter.

One clause per condition, joined by ` and ` or `;` (or given as repeated
--filter flags, which are ANDed too)::

    camera_id=7                 integer match (quote it, "7", for a keyword)
    camera_id=cam-front         keyword match; true/false match booleans
    camera_id!=3                must not match
    width>=1000                 numeric range (>, >=, <, <=)
    ts>=2024-05-01              datetime range when the value is a date or
    timestamp<2024-06-01T12:00  datetime (no zone given: UTC)
    tags in (a, b)              any of the values; `not in` excludes them
    near=48.85,2.35,5km         within 5 km of lat,lon on `location` (m or km)
    caption~"red jacket"        full-text: every word occurs in the field

`ts` (or `time`) is short for `timestamp`, `tag` for `tags`, `loc` for
`location` (search_gateway/field_aliases.py, shared with --meta). `==`,
`=>` and `=<` are refused with a pointer, not read as '=' plus a value. Errors point at the bad part
with a caret, so a typo in a long filter is found at a glance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Literal, NoReturn, TypeVar

from search_gateway import domain as d
from search_gateway.field_aliases import ALIASES, canonical

__all__ = ["ALIASES", "FilterSyntaxError", "parse_datetime", "parse_filter", "parse_filters"]
GEO_KEYWORD = "near"

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_SYMBOL_OP_RE = re.compile(r"!=|>=|<=|=|>|<|~")
_WORD_OP_RE = re.compile(r"(not\s+in|in)(?![A-Za-z0-9_])", re.IGNORECASE)
_AND_RE = re.compile(r"and(?=\s|$)", re.IGNORECASE)
_INT_RE = re.compile(r"[-+]?\d+")
_NUMBER_RE = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_BARE_RE = re.compile(r"[^\s;]+")
_LIST_ITEM_RE = re.compile(r"[^\s,()]+")
_RADIUS_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([A-Za-z]*)")
_RADIUS_UNITS = {"": 1.0, "m": 1.0, "km": 1000.0}

_OPERATOR_TYPOS = {
    "==": "'==' is not an operator: use '=' (camera_id=7)",
    "=>": "'=>' is not an operator: use '>='",
    "=<": "'=<' is not an operator: use '<='",
    "!==": "'!==' is not an operator: use '!='",
}
_INT64 = 2**63
_RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
Target = Literal["must", "must_not"]
_Leaf = TypeVar(
    "_Leaf", bound=d.Match | d.MatchAny | d.Range | d.DatetimeRange | d.GeoRadius | d.TextMatch
)


class FilterSyntaxError(d.InvalidFilter):
    """A filter text that does not parse; str() shows the text with a caret."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        super().__init__(f"cannot parse filter: {reason}\n  {text}\n  {' ' * position}^")


def parse_filter(text: str) -> d.Filter:
    """Parses one filter text (clauses joined by ' and ' or ';')."""
    return _Parser(text).parse()


def parse_filters(texts: Sequence[str]) -> d.Filter | None:
    """ANDs several filter texts (repeated --filter flags); None when none given."""
    must: list[d.Condition] = []
    must_not: list[d.Condition] = []
    for text in texts:
        parsed = parse_filter(text)
        must.extend(parsed.must)
        must_not.extend(parsed.must_not)
    if not must and not must_not:
        return None
    return d.Filter(must=tuple(must), must_not=tuple(must_not))


def parse_datetime(text: str) -> datetime | None:
    """A date or ISO 8601 datetime, made UTC when no zone is given; None if neither."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


class _Parser:
    """Recursive-descent scanner over one filter text; pos is an index into text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> d.Filter:
        must: list[d.Condition] = []
        must_not: list[d.Condition] = []
        self._skip_ws()
        if self._at_end():
            self._fail("empty filter")
        while True:
            target, condition = self._clause()
            (must if target == "must" else must_not).append(condition)
            self._skip_ws()
            if self._at_end():
                break
            if self._peek(";"):
                self.pos += 1
            elif m := _AND_RE.match(self.text, self.pos):
                self.pos = m.end()
            else:
                self._fail("expected 'and' or ';' between conditions")
            self._skip_ws()
            if self._at_end():
                self._fail("expected a condition after the separator")
        return d.Filter(must=tuple(must), must_not=tuple(must_not))

    # --- clauses ------------------------------------------------------------

    def _clause(self) -> tuple[Target, d.Condition]:
        start = self.pos
        key_match = _KEY_RE.match(self.text, self.pos)
        if not key_match:
            self._fail("expected a field name")
        raw_key = key_match.group()
        self.pos = key_match.end()
        self._skip_ws()
        op = self._operator(raw_key)
        op_end = self.pos
        key = canonical(raw_key)
        if raw_key == GEO_KEYWORD:
            if op != "=":
                self._fail(
                    f"'{GEO_KEYWORD}' takes '=': near=LAT,LON,RADIUS[m|km]", op_end - len(op)
                )
            return "must", self._checked(self._geo(), start)
        if op in ("in", "not in"):
            values = self._list()
            return ("must_not" if op == "not in" else "must"), self._checked(
                d.MatchAny(key, values), start
            )
        self._skip_ws()
        if self._at_end() or self._peek(";") or _AND_RE.match(self.text, self.pos):
            self._fail(f"expected a value after '{op}'", op_end)
        value_start = self.pos
        value, quoted = self._value()
        if op in ("=", "!="):
            target: Target = "must_not" if op == "!=" else "must"
            return target, self._checked(d.Match(key, _typed(value, quoted)), start)
        if op == "~":
            return "must", self._checked(d.TextMatch(key, value), start)
        return "must", self._checked(self._range(key, op, value, quoted, value_start), start)

    def _operator(self, key: str) -> str:
        if m := _SYMBOL_OP_RE.match(self.text, self.pos):
            op = m.group()
            typo = _OPERATOR_TYPOS.get(self.text[m.start() : m.end() + 1])
            if typo is not None:
                self._fail(typo, m.start())
            self.pos = m.end()
            return op
        if m := _WORD_OP_RE.match(self.text, self.pos):
            self.pos = m.end()
            return "not in" if m.group(1).lower().startswith("not") else "in"
        self._fail(f"expected an operator (=, !=, >, >=, <, <=, ~, in, not in) after '{key}'")

    def _range(
        self, key: str, op: str, value: str, quoted: bool, value_start: int
    ) -> d.Range | d.DatetimeRange:
        bound = _RANGE_OPS[op]
        if not quoted and _NUMBER_RE.fullmatch(value):
            return d.Range(key, **{bound: float(value)})
        when = parse_datetime(value)
        if when is None:
            self._fail(f"expected a number, date or datetime after '{op}'", value_start)
        return d.DatetimeRange(key, **{bound: when})

    def _geo(self) -> d.GeoRadius:
        self._skip_ws()
        lat = self._number("latitude")
        self._expect(",", "expected ',' after the latitude (near=LAT,LON,RADIUS)")
        lon = self._number("longitude")
        self._expect(",", "expected ',' after the longitude (near=LAT,LON,RADIUS)")
        self._skip_ws()
        m = _RADIUS_RE.match(self.text, self.pos)
        if not m:
            self._fail("expected a radius such as 500m or 5km")
        unit = m.group(2).lower()
        if unit not in _RADIUS_UNITS:
            self._fail(f"unknown radius unit {m.group(2)!r} (use m or km)", m.start(2))
        self.pos = m.end()
        scale = _RADIUS_UNITS[unit]
        return d.GeoRadius(d.LOCATION, lat=lat, lon=lon, radius_m=float(m.group(1)) * scale)

    def _list(self) -> tuple[str, ...] | tuple[int, ...]:
        self._expect("(", "expected '(' to open the list of values")
        items: list[tuple[str, bool]] = []
        while True:
            self._skip_ws()
            if self._peek(")") and not items:
                self._fail("empty list: give at least one value")
            if self._peek('"') or self._peek("'"):
                items.append((self._quoted(), True))
            elif m := _LIST_ITEM_RE.match(self.text, self.pos):
                self.pos = m.end()
                items.append((m.group(), False))
            else:
                self._fail("expected a value in the list")
            self._skip_ws()
            if self._peek(","):
                self.pos += 1
            elif self._peek(")"):
                self.pos += 1
                break
            else:
                self._fail("expected ',' or ')' in the list")
        if all(not quoted and _is_int(v) for v, quoted in items):
            return tuple(int(v) for v, _ in items)
        return tuple(v for v, _ in items)

    # --- tokens -------------------------------------------------------------

    def _value(self) -> tuple[str, bool]:
        if self._peek('"') or self._peek("'"):
            return self._quoted(), True
        m = _BARE_RE.match(self.text, self.pos)
        assert m is not None  # callers checked there is a non-separator character
        self.pos = m.end()
        return m.group(), False

    def _quoted(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if ch == quote:
                return "".join(chars)
            chars.append(ch)
        self._fail("unterminated quoted value", start)

    def _number(self, what: str) -> float:
        self._skip_ws()
        m = _NUMBER_RE.match(self.text, self.pos)
        if not m:
            self._fail(f"expected the {what} as a number")
        self.pos = m.end()
        return float(m.group())

    def _expect(self, token: str, reason: str) -> None:
        self._skip_ws()
        if not self._peek(token):
            self._fail(reason)
        self.pos += len(token)

    def _checked(self, condition: _Leaf, start: int) -> _Leaf:
        """Validates one condition, reporting a problem at the start of its clause."""
        if problem := d.condition_problem(condition):
            self._fail(f"{condition.describe()}: {problem}", start)
        return condition

    def _skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    def _fail(self, reason: str, position: int | None = None) -> NoReturn:
        raise FilterSyntaxError(reason, self.text, self.pos if position is None else position)


def _is_int(value: str) -> bool:
    return bool(_INT_RE.fullmatch(value)) and -_INT64 <= int(value) < _INT64


def _typed(value: str, quoted: bool) -> str | int | bool:
    """Bare true/false are booleans, bare integers integers; quoted values stay text."""
    if quoted:
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if _is_int(value):
        return int(value)
    return value
