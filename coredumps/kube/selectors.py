"""Label selectors: parse the config's strings and match label dicts.

Each string is one selector in the API server's grammar: requirements joined by commas, each
one of ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``,
``key`` (exists) or ``!key`` (absent). A selector matches labels that meet all its
requirements; a list of selectors (``helmReleaseLabels``, ``operatorLabels``) matches labels
that match any one of them, as the original agent's label lists did.

One convenience the API server lacks: ``helm.sh/chart=milvus`` also matches a versioned chart
label such as ``milvus-4.1.0``, because Helm writes the chart's name and version into that label.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from coredumps.errors import ConfigError

HELM_CHART_LABEL = "helm.sh/chart"

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_KEY = rf"(?:{_PREFIX}/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a selector."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return value is not None
        if self.operator == "!":
            return value is None
        if self.operator == "=":
            return value is not None and _equal(self.key, value, self.values[0])
        if self.operator == "!=":
            return value is None or not _equal(self.key, value, self.values[0])
        if self.operator == "in":
            return value is not None and value in self.values
        return value is None or value not in self.values

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


def _equal(key: str, actual: str, wanted: str) -> bool:
    if actual == wanted:
        return True
    if key != HELM_CHART_LABEL or not actual.startswith(wanted + "-"):
        return False
    return actual[len(wanted) + 1 : len(wanted) + 2].isdigit()


@dataclass(frozen=True)
class Selector:
    """All requirements of one selector string."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _split(text: str) -> list[str]:
    parts: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def _requirement(part: str, text: str) -> Requirement:
    if m := _EQUALITY.match(part):
        key, op, value = m.groups()
        return Requirement(key, "!=" if op == "!=" else "=", (value,))
    if m := _SET.match(part):
        key, op, raw = m.groups()
        values = tuple(sorted({v.strip() for v in raw.split(",")}))
        if not values or any(not v or not _VALUE_ONLY.match(v) for v in values):
            raise ConfigError(f"label selector '{text}': '{part}' needs a list of valid values, e.g. key in (a,b).")
        return Requirement(key, "in" if op == "in" else "notin", values)
    if m := _EXISTS.match(part):
        negate, key = m.groups()
        return Requirement(key, "!" if negate else "exists")
    raise ConfigError(
        f"label selector '{text}': '{part}' is not a requirement; use key=value, key!=value, "
        "key in (a,b), key notin (a,b), key or !key with a valid label key."
    )


@functools.lru_cache(maxsize=256)
def parse(text: str) -> Selector:
    """Parse one selector string; a malformed one raises ``ConfigError`` naming the bad part."""
    if not text.strip():
        raise ConfigError("an empty label selector would match every pod; remove it or write key=value.")
    return Selector(tuple(_requirement(part, text) for part in _split(text)))


def parse_all(texts: Iterable[str]) -> tuple[Selector, ...]:
    """Parse a config list of selectors."""
    return tuple(parse(text) for text in texts)


def matches_any(selectors: Iterable[Selector], labels: Mapping[str, str] | None) -> bool:
    """True when the labels match at least one of the selectors."""
    return any(selector.matches(labels) for selector in selectors)
