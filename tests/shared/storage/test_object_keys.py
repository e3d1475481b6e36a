"""Key rules (shared/storage/_keys.py)."""

from __future__ import annotations

import random

import pytest

from shared.storage._object_keys import (
    check_key,
    check_list_prefix,
    check_prefix,
    join_key,
    split_list_prefix,
    walk_order,
)


@pytest.mark.parametrize("key", ["a", "a/b.jsonl", "_shardline/shards/00001/input.jsonl", "é/ü"])
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", ".", "..", "a/../b", "./a", "a\x00b"])
def test_bad_keys(key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        check_key(key)


def test_prefixes() -> None:
    assert check_prefix("/runs/r1/") == "runs/r1"
    for bad in ("", "/", "a/../b"):
        with pytest.raises(ValueError):
            check_prefix(bad)
    assert check_list_prefix("") == ""
    assert check_list_prefix("a/par") == "a/par"
    assert check_list_prefix("a/") == "a/"
    for bad in ("/a", "../x", "a//b"):
        with pytest.raises(ValueError):
            check_list_prefix(bad)


def test_join_and_split() -> None:
    assert join_key("", "k") == "k"
    assert join_key("r", "") == "r"
    assert join_key("r/s", "k") == "r/s/k"
    assert split_list_prefix("a/b/par") == ("a/b", "par")
    assert split_list_prefix("a/") == ("a", "")
    assert split_list_prefix("par") == ("", "par")


def _walk(tree: dict[str, object], base: str = "") -> list[str]:
    """Directory-by-directory walk sorted by ``walk_order``, like the backends do."""
    entries = sorted(tree.items(), key=lambda item: walk_order(item[0], isinstance(item[1], dict)))
    keys: list[str] = []
    for name, sub in entries:
        key = join_key(base, name)
        keys.extend(_walk(sub, key) if isinstance(sub, dict) else [key])
    return keys


def test_walk_order_gives_string_order_of_full_keys() -> None:
    rng = random.Random(7)
    alphabet = ["a", "b", "-", ".", "0", "~", "A", "é", "_"]
    for _ in range(200):
        tree: dict[str, object] = {}
        keys: set[str] = set()
        for _ in range(30):
            parts = ["".join(rng.choices(alphabet, k=rng.randint(1, 3))) for _ in range(3)]
            parts = parts[: rng.randint(1, 3)]
            node = tree
            ok = True
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    ok = False
                    break
                node = child
            if ok and parts[-1] not in node:
                node[parts[-1]] = None
                keys.add("/".join(parts))
        assert _walk(tree) == sorted(keys)
