"""Key and prefix rules shared by every backend.

Keys are ``/``-separated relative paths. Refusing empty, ``.`` and ``..`` segments keeps a
key from escaping a local root and makes the same key mean the same object on every backend
(object stores would otherwise accept ``a//b`` or ``../x`` as literal names).
"""

from __future__ import annotations


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it names an object, else raise ``ValueError``."""
    if not key or key.startswith("/") or key.endswith("/"):
        raise ValueError(f"invalid storage key {key!r}: must be a non-empty relative path")
    _check_segments(key, key.split("/"))
    return key


def check_prefix(prefix: str) -> str:
    """A child root: the same rules as a key, but surrounding slashes are dropped."""
    stripped = prefix.strip("/")
    if not stripped:
        raise ValueError(f"invalid storage prefix {prefix!r}: must name a sub-path")
    _check_segments(prefix, stripped.split("/"))
    return stripped


def check_list_prefix(prefix: str) -> str:
    """A listing prefix: any start of a key (``""``, ``"a/"``, ``"a/b"``, ``"a/part-0"``)."""
    if prefix.startswith("/"):
        raise ValueError(f"invalid listing prefix {prefix!r}: must be relative")
    complete = prefix.split("/")[:-1]
    if complete:
        _check_segments(prefix, complete)
    return prefix


def join_key(root: str, key: str) -> str:
    """``key`` under ``root`` (either may be empty)."""
    if not root:
        return key
    if not key:
        return root
    return f"{root}/{key}"


def split_list_prefix(prefix: str) -> tuple[str, str]:
    """``"a/b/par"`` -> ``("a/b", "par")``: the directory to walk and the name filter in it."""
    directory, _, partial = prefix.rpartition("/")
    return directory, partial


def walk_order(name: str, is_dir: bool) -> str:
    """Sort key that makes a directory-by-directory walk yield keys in plain string order.

    Every key below directory ``d`` starts with ``d/``, so ordering a directory as
    ``name + "/"`` among its siblings puts its whole subtree exactly where string order of
    the full keys puts it (``a.txt`` < ``a/b`` < ``a0`` because ``.`` < ``/`` < ``0``).
    """
    return f"{name}/" if is_dir else name


def _check_segments(original: str, segments: list[str]) -> None:
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise ValueError(f"invalid storage key {original!r}: empty, '.' or '..' path segment")
        if "\x00" in segment:
            raise ValueError(f"invalid storage key {original!r}: NUL character")
