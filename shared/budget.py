"""A run's budget: the estimate of what a part will cost, and which parts fit.

A part's estimate is its estimated input tokens (:mod:`shared.tokens`) plus
``estimate_output_tokens`` per request (no one knows the answers' length before they
come), at the batch price. Parts are taken in input order and sent while the sum of what is
committed stays within ``max_cost``; the first that would pass it and every later one are
held back. Input order, not the cheapest-first packing, so that what is sent is a prefix a
user can reason about and re-run the rest of.

Retries are not charged again: they re-send lines whose estimate is already committed, and
the provider bills a request once it succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.pricing import estimate_cost
from shared.run.records import CostEstimate, TokenTotals

BUDGET_EXCEEDED = "BUDGET_EXCEEDED"


def part_estimate(model: str, requests: int, tokens: int, output_tokens: int) -> CostEstimate:
    """The batch-price estimate of a part of ``requests`` lines and ``tokens`` input tokens."""
    candidates = requests * output_tokens
    return estimate_cost(model, TokenTotals(prompt=tokens, candidates=candidates,
                                            total=tokens + candidates))


def affordable(costs: Iterable[float], max_cost: float) -> int:
    """How many leading parts of ``costs`` fit in ``max_cost`` (cumulative, in order)."""
    committed = 0.0
    count = 0
    for cost in costs:
        if committed + cost > max_cost:
            break
        committed += cost
        count += 1
    return count


def budget_error(max_cost: float) -> dict[str, object]:
    return {
        "code": None,
        "status": BUDGET_EXCEEDED,
        "message": f"not submitted: the run's estimated cost would pass max_cost "
        f"(${max_cost:g})",
    }
