"""Comparing our admin answers with a real SoftEther server's: the field
set of an answer, and what differs beyond the differences a test documents."""

from __future__ import annotations

from typing import Any

# Known differences of one answer: (fields only ours has, fields only
# SoftEther's has, why).
Difference = tuple[set[str], set[str], str]
NO_DIFFERENCE: Difference = (set(), set(), "")


def field_set(value: Any, prefix: str = "") -> set[str]:
    """Every field path in an answer; a list's rows contribute the union of their fields."""
    if isinstance(value, dict):
        out = set()
        for key, inner in value.items():
            out.add(prefix + key)
            out |= field_set(inner, prefix + key + ".")
        return out
    if isinstance(value, list):
        return set().union(*(field_set(row, prefix) for row in value if isinstance(row, dict)))
    return set()


def unexpected(ours: set[str], theirs: set[str], known: Difference = NO_DIFFERENCE) -> dict[str, list[str]]:
    """The two sides' field differences when they are not exactly `known`, else {}."""
    only_ours, only_theirs = ours - theirs, theirs - ours
    if (only_ours, only_theirs) == known[:2]:
        return {}
    return {"only vpnd": sorted(only_ours), "only SoftEther": sorted(only_theirs)}
