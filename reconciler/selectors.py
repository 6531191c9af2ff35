"""Kubernetes label selectors, parsed and matched here (pure).

The API server filters the reconciler's list and watch of MySQL objects by its
`--label-selector`; but the loops over claims, pods and Jobs wake instances by name, and
a woken instance is read with a plain GET, which no selector filters. So the executor
checks each object against the same selector and leaves the others to the reconciler
they belong to.

Supported: `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`,
`key notin (a,b)`, joined by commas, as `kubectl -l` accepts them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_KEY: Final = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE: Final = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


class SelectorError(ValueError):
    pass


class Op(StrEnum):
    EXISTS = "exists"
    ABSENT = "absent"
    IN = "in"
    NOT_IN = "notin"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op is Op.EXISTS:
            return self.key in labels
        if self.op is Op.ABSENT:
            return self.key not in labels
        if self.op is Op.IN:
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def parse_selector(text: str) -> Selector:
    """Raises `SelectorError` naming the part that does not parse."""
    requirements = []
    for part in _split(text.strip()):
        requirements.append(_requirement(part.strip()))
    return Selector(tuple(requirements))


def _split(text: str) -> list[str]:
    """Splits at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip() or parts:
        parts.append(current)
    return [part for part in parts if part.strip()] if text else []


def _requirement(part: str) -> Requirement:
    patterns = (
        (rf"^!({_KEY})$", lambda m: Requirement(m[1], Op.ABSENT)),
        (
            rf"^({_KEY})\s*(==|=)\s*({_VALUE})$",
            lambda m: Requirement(m[1], Op.IN, frozenset({m[4]})),
        ),
        (
            rf"^({_KEY})\s*!=\s*({_VALUE})$",
            lambda m: Requirement(m[1], Op.NOT_IN, frozenset({m[3]})),
        ),
        (rf"^({_KEY})\s+(in|notin)\s+\(([^()]*)\)$", _set_requirement),
        (rf"^({_KEY})$", lambda m: Requirement(m[1], Op.EXISTS)),
    )
    for pattern, build in patterns:
        match = re.match(pattern, part)
        if match is not None:
            return build(match)
    raise SelectorError(f"not a label selector requirement: {part!r}")


def _set_requirement(match: re.Match[str]) -> Requirement:
    values = frozenset(value.strip() for value in match[4].split(",") if value.strip())
    for value in values:
        if not re.fullmatch(_VALUE, value):
            raise SelectorError(f"not a label value: {value!r}")
    return Requirement(match[1], Op.IN if match[3] == "in" else Op.NOT_IN, values)
