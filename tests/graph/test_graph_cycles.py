"""Components and bounded cycle enumeration on hand-drawn graphs."""

from __future__ import annotations

import pytest

from tally.graph.cycles import (
    CycleLimitError,
    canonical,
    elementary_cycles,
    is_cycle,
    strongly_connected,
    successors,
)


def test_components_of_a_hand_drawn_graph() -> None:
    # a ⇄ b → c → d → c, e alone, f → a
    succ = successors(
        [("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "c"), ("f", "a"), ("e", "e")]
    )
    assert strongly_connected(succ) == [["a", "b"], ["c", "d"], ["f"]]
    assert "e" not in succ  # self-loops are dropped


def test_figure_eight_has_exactly_its_two_cycles() -> None:
    # circle a→b→c→a and circle a→d→a share a
    succ = successors([("a", "b"), ("b", "c"), ("c", "a"), ("a", "d"), ("d", "a")])
    assert elementary_cycles(succ) == [("a", "b", "c"), ("a", "d")]


def test_complete_graph_on_three_nodes() -> None:
    pairs = [(x, y) for x in "abc" for y in "abc" if x != y]
    cycles = elementary_cycles(successors(pairs))
    assert cycles == [("a", "b"), ("a", "b", "c"), ("a", "c"), ("a", "c", "b"), ("b", "c")]
    assert elementary_cycles(successors(pairs), max_len=2) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_limits_are_said_not_swallowed() -> None:
    pairs = [(x, y) for x in "abcd" for y in "abcd" if x != y]  # 20 elementary cycles
    assert len(elementary_cycles(successors(pairs))) == 20
    with pytest.raises(CycleLimitError, match="more than 5 cycles") as info:
        elementary_cycles(successors(pairs), limit=5)
    assert len(info.value.found) == 5
    with pytest.raises(ValueError, match="max_len must be at least 2"):
        elementary_cycles({}, max_len=1)


def test_canonical_rotation_and_cycle_check() -> None:
    assert canonical(["c", "a", "b"]) == ("a", "b", "c")
    edges = {("a", "b"), ("b", "c"), ("c", "a")}
    assert is_cycle(("a", "b", "c"), lambda x, y: (x, y) in edges)
    assert not is_cycle(("a", "c", "b"), lambda x, y: (x, y) in edges)
    assert not is_cycle(("a",), lambda x, y: True)
    assert not is_cycle(("a", "b", "a"), lambda x, y: True)
