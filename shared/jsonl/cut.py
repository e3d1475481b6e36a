"""Where staged files are cut: a pure rule shared by the planner and the retry stager."""

from __future__ import annotations

from pydantic import BaseModel


class StagedFile(BaseModel):
    """One staged provider input (a shard, or a part of an attempt): its size and line span.

    Lines are contiguous in input order between ``first_line`` and ``last_line`` except for
    lines that were rejected or are not being (re)submitted.
    """

    index: int
    requests: int
    bytes: int
    first_line: int
    last_line: int
    estimated_tokens: int


def must_cut(
    requests: int, size: int, line_bytes: int, *, max_bytes: int, max_requests: int
) -> bool:
    """Whether a line of ``line_bytes`` must start a new file rather than join the current one
    (holding ``requests`` lines, ``size`` bytes). A file of exactly ``max_bytes`` is allowed;
    a line that alone exceeds ``max_bytes`` is the caller's to reject, never cut around."""
    return requests > 0 and (requests >= max_requests or size + line_bytes > max_bytes)
