"""One line out of a pydantic ``ValidationError``: the fields and what is wrong, no values.

Pydantic's own text spans lines and quotes the input (``input_value='SLKEY-...'``); the
input may be a secret (a malformed ``SHARDLINE_API_KEYS``, a key pasted into a RunSpec
field), and the text goes to terminals, worker logs, result backends and Flower.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def problems(
    exc: ValidationError, *, name: Callable[[str], str] | None = None, root: str = ""
) -> str:
    """``"field: message; other.field: message"`` (``name`` renders a dotted location;
    ``root`` names an error about the whole input)."""
    parts: list[str] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = _dotted(error["loc"]) if error["loc"] else root
        if where and name is not None:
            where = name(where)
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


__all__ = ["problems"]
