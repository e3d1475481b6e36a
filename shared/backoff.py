"""Backoff and poll countdowns as pure functions; callers only decide whether to wait.

Both functions compute an exponential *envelope* ``min(cap, base * factor ** n)`` and then
take a random fraction of at most ``jitter`` off it, so a result always lies in
``[(1 - jitter) * envelope, envelope]``. Jitter only ever shortens the wait: the cap is a hard
bound (a poll countdown must stay under the broker's visibility timeout), and workers that
failed together still spread out.
"""

from __future__ import annotations

import random

_SYSTEM_RANDOM = random.Random()


def envelope(step: int, *, base: float, factor: float, cap: float) -> float:
    """The un-jittered delay for ``step`` (0-based): ``min(cap, base * factor ** step)``."""
    if step < 0:
        raise ValueError("step must be >= 0")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    if factor < 1:
        raise ValueError("factor must be >= 1")
    try:
        raw = base * factor**step
    except OverflowError:
        return cap
    return min(cap, raw)


def jittered(value: float, *, jitter: float, rng: random.Random | None = None) -> float:
    """``value`` less a random fraction in ``[0, jitter)`` of it."""
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0, 1]")
    draw = (rng or _SYSTEM_RANDOM).random()
    return value * (1.0 - jitter * draw)


def backoff_delay(
    attempt: int,
    *,
    base: float = 1.0,
    factor: float = 2.0,
    cap: float = 30.0,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = the first retry)."""
    return jittered(envelope(attempt, base=base, factor=factor, cap=cap), jitter=jitter, rng=rng)


def poll_countdown(
    poll_number: int,
    *,
    initial: float,
    maximum: float,
    factor: float = 1.5,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> float:
    """Countdown before poll number ``poll_number`` (0 = the first poll after create).

    Grows from ``initial`` by ``factor`` per poll up to ``maximum``: a fresh job is checked
    soon, a day-long one costs a request every ``maximum`` seconds at most.
    """
    return jittered(
        envelope(poll_number, base=initial, factor=factor, cap=maximum), jitter=jitter, rng=rng
    )
