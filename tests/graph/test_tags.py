"""The one tag vocabulary (celltrack.graph.tags): named sets, re-check, and its users agree."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph, concat
from celltrack.graph import tags as T

PACKAGE = Path(__file__).resolve().parents[2] / "celltrack"


def test_named_sets_partition_the_vocabulary():
    assert set(T.REVIEWED) | {"unlabeled"} == set(T.TAGS)
    assert set(T.NUCLEUS) | set(T.PERIPHERY) | set(T.BACKGROUND) == set(T.REVIEWED)
    assert set(T.LINKABLE).isdisjoint(T.NEVER_LINKED)
    assert set(T.LINKABLE) | set(T.NEVER_LINKED) == set(T.TAGS)
    assert set(T.CORRECTIONS) == {"fn", "fp", "fb"}
    assert T.MANUAL == "fn" and T.REVIEW == {"accept": "tp", "reject": "fp"}


def test_tag_enum_converts_to_its_value_everywhere():
    assert str(T.Tag.TP) == "tp" and f"{T.Tag.UNLABELED}" == "unlabeled"
    assert T.check_tags([T.Tag.TP, "fn"]).tolist() == ["tp", "fn"]
    assert np.asarray([T.Tag.UNLABELED]).astype(str).tolist() == ["unlabeled"]


@pytest.mark.parametrize(
    ("tag", "found", "expected"),
    [
        ("fn", True, "tp"),  # the model now finds a nucleus it missed
        ("tn", True, "fp"),  # it still fires on a rejected region
        ("tb", True, "fb"),
        ("tp", False, "fn"),  # it no longer finds a confirmed nucleus
        ("fp", False, "tn"),  # it stopped firing on a rejected region
        ("fb", False, "tb"),
        ("tp", True, "tp"),
        ("fp", True, "fp"),
        ("unlabeled", True, "unlabeled"),
        ("unlabeled", False, "unlabeled"),
    ],
)
def test_recheck_follows_elephant(tag, found, expected):
    assert T.recheck_tags([tag], [found]).tolist() == [expected]


def test_recheck_and_check_reject_bad_input():
    with pytest.raises(InvalidInputError, match="allowed tags"):
        T.check_tags(["tp", "maybe"])
    with pytest.raises(InvalidInputError, match="one entry per tag"):
        T.recheck_tags(["tp", "fn"], [True])


def test_tags_of_defaults_and_validates():
    g = TrackGraph({"id": [0, 1], "t": [0, 0], "z": [0.0, 0], "y": [0.0, 0], "x": [0.0, 0]})
    assert T.tags_of(g).tolist() == ["unlabeled"] * 2
    assert T.tags_of(g, default=T.Tag.TP).tolist() == ["tp"] * 2
    g.set_node_column("tag", np.array(["tp", "fp"]))
    assert T.tags_of(g).tolist() == ["tp", "fp"]


def test_concat_fills_missing_tags_with_the_whole_word():
    """A narrow tag column ('<U2') once truncated the fill to 'un'."""
    tagged = TrackGraph(
        {"id": [0], "t": [0], "z": [0.0], "y": [0.0], "x": [0.0], "tag": np.array(["tp"])}
    )
    untagged = TrackGraph({"id": [1], "t": [1], "z": [0.0], "y": [0.0], "x": [0.0]})
    merged = concat([tagged, untagged])
    assert merged.nodes["tag"].tolist() == ["tp", "unlabeled"]
    named = TrackGraph(
        {"id": [0], "t": [0], "z": [0.0], "y": [0.0], "x": [0.0], "name": np.array(["ab"])}
    )
    assert concat([named, untagged]).nodes["name"].tolist() == ["ab", ""]


def _tag_tuples(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """Literal tuples/sets of two or more tag names in a module (a private tag subset)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.Set, ast.List)) and len(node.elts) >= 2:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) and all(v in T.TAGS for v in values):
                found.append((node.lineno, tuple(values)))
    return found


def test_no_module_but_graph_tags_defines_a_tag_subset():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "tags.py" and path.parent.name == "graph":
            continue
        hits = _tag_tuples(path)
        if hits:
            offenders[str(path.relative_to(PACKAGE))] = hits
    assert offenders == {}, f"define tag sets in celltrack/graph/tags.py only: {offenders}"
