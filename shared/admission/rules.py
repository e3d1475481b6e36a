"""The decisions of admission control, as pure functions over numbers read from Redis.

The Lua scripts in :mod:`shared.admission._lua` apply :func:`fits` and :func:`job_verdict`
atomically inside Redis; the tests hold the two to the same answers.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.settings import Settings

JobVerdict = Literal["admit", "jobs", "tokens"]


@dataclass(frozen=True)
class Limits:
    """What one Google Cloud project (all its keys together) may hold at the provider."""

    max_live_jobs: int
    token_budget: int | None
    file_budget_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_live_jobs=settings.max_live_jobs_per_project,
            token_budget=settings.enqueued_token_budget,
            file_budget_bytes=settings.file_storage_budget_bytes,
        )


@dataclass(frozen=True)
class KeyLoad:
    """What a key's project holds now, as far as a new part's request is concerned."""

    key_fingerprint: str
    live_jobs: int
    enqueued_tokens: int  # of the part's model only: the budget is per model
    file_bytes: int
    held: bool = False  # the asking holder already holds something in this key's project


def fits(current: int, request: int, budget: int | None) -> bool:
    """Whether ``request`` more may join ``current`` under ``budget`` (None: no budget).

    A request larger than the whole budget would never fit; it is admitted when nothing
    else is held (``current == 0``), so it runs alone instead of waiting forever. The
    provider may still refuse it (a 429 at create), which is then the provider's answer.
    """
    if budget is None or current == 0:
        return True
    return current + request <= budget


def job_verdict(live_jobs: int, enqueued: int, tokens: int, limits: Limits) -> JobVerdict:
    """Admit a new batch job, or name the limit that holds it back."""
    if live_jobs >= limits.max_live_jobs:
        return "jobs"
    if not fits(enqueued, tokens, limits.token_budget):
        return "tokens"
    return "admit"


def headroom(load: KeyLoad, limits: Limits) -> float:
    """The scarcest share left on a key (1.0: idle, 0.0 or less: full) of any of its limits."""
    return min(_shares(load, limits))


def _shares(load: KeyLoad, limits: Limits) -> list[float]:
    shares = [
        1.0 - load.live_jobs / limits.max_live_jobs,
        1.0 - load.file_bytes / limits.file_budget_bytes,
    ]
    if limits.token_budget is not None:
        shares.append(1.0 - load.enqueued_tokens / limits.token_budget)
    return shares


def pick_key(loads: Sequence[KeyLoad], limits: Limits, *, tokens: int, size: int) -> str:
    """The key a new part should use: one it already holds, else the one with most room.

    Keys where the part fits now (a job slot, its tokens and its bytes) come before keys
    where it would wait; among those, the most headroom (the scarcest share left) wins, then
    the most room over all limits, then pool order. So a run's parts spread across the pool
    as each claim lowers its key's headroom.
    """
    if not loads:
        raise ValueError("pick_key needs at least one key")
    for load in loads:
        if load.held:
            return load.key_fingerprint

    def rank(item: tuple[int, KeyLoad]) -> tuple[bool, float, float, int]:
        index, load = item
        ready = job_verdict(
            load.live_jobs, load.enqueued_tokens, tokens, limits
        ) == "admit" and fits(load.file_bytes, size, limits.file_budget_bytes)
        shares = _shares(load, limits)
        return (not ready, -min(shares), -sum(shares), index)

    return min(enumerate(loads), key=rank)[1].key_fingerprint


def retry_countdown(low: float, high: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before asking again: uniform in [low, high], so waiters spread out."""
    return (rng or random).uniform(low, high)


def run_of(holder: str) -> str:
    """The run id of a ``run:shard:attempt:part`` holder (the whole id if it has no parts)."""
    return holder.rsplit(":", 3)[0]


def orphans(
    holdings: Mapping[str, float],
    live: Collection[str],
    *,
    now_ms: float,
    grace_ms: float,
    runs: Collection[str] | None = None,
) -> list[str]:
    """Holders that records no longer vouch for: not live, and older than the grace period.

    ``holdings`` maps holder to acquire time (ms). The grace period spares a holder that
    acquired a moment ago and has not written its record yet. With ``runs``, only holders of
    those runs are judged, so a reconciler that looked at some runs drops nothing of others.
    """
    return sorted(
        holder
        for holder, acquired in holdings.items()
        if holder not in live
        and acquired <= now_ms - grace_ms
        and (runs is None or run_of(holder) in runs)
    )
