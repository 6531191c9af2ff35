"""Label selectors as `kubectl -l` takes them: parsed once from the settings, and matched
by the executor against an object woken through one of its claims, pods or Jobs."""

from __future__ import annotations

import pytest

from reconciler.selectors import Op, Requirement, Selector, SelectorError, parse_selector

pytestmark = pytest.mark.unit


def test_the_empty_selector_matches_everything() -> None:
    assert parse_selector("") == Selector()
    assert parse_selector("  ") == Selector()
    assert Selector().matches({})
    assert Selector().matches({"a": "b"})


@pytest.mark.parametrize(
    ("text", "requirement"),
    [
        ("tier", Requirement("tier", Op.EXISTS)),
        ("!tier", Requirement("tier", Op.ABSENT)),
        ("tier=db", Requirement("tier", Op.IN, frozenset({"db"}))),
        ("tier==db", Requirement("tier", Op.IN, frozenset({"db"}))),
        ("tier!=db", Requirement("tier", Op.NOT_IN, frozenset({"db"}))),
        ("tier in (a, b)", Requirement("tier", Op.IN, frozenset({"a", "b"}))),
        ("tier notin (a,b)", Requirement("tier", Op.NOT_IN, frozenset({"a", "b"}))),
        ("example.com/shard=a", Requirement("example.com/shard", Op.IN, frozenset({"a"}))),
    ],
)
def test_each_form_parses(text: str, requirement: Requirement) -> None:
    assert parse_selector(text) == Selector((requirement,))


def test_commas_inside_a_set_do_not_split_requirements() -> None:
    selector = parse_selector("shard in (a,b),tier!=test")
    assert len(selector.requirements) == 2


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("shard=a", {"shard": "a"}, True),
        ("shard=a", {"shard": "b"}, False),
        ("shard=a", {}, False),
        ("shard!=a", {}, True),
        ("shard!=a", {"shard": "a"}, False),
        ("shard in (a,b)", {"shard": "b"}, True),
        ("shard notin (a,b)", {"shard": "c"}, True),
        ("shard notin (a,b)", {}, True),
        ("shard", {"shard": ""}, True),
        ("!shard", {"shard": "a"}, False),
        ("shard=a,tier=db", {"shard": "a"}, False),
        ("shard=a,tier=db", {"shard": "a", "tier": "db"}, True),
    ],
)
def test_matching(text: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(text).matches(labels) is matches


@pytest.mark.parametrize("text", ["shard=a b", "shard in a,b", "=a", "shard in (a b)", "!"])
def test_what_does_not_parse_is_named(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)
