"""Backoff and poll countdown: envelope grows monotonically, cap holds, jitter stays in bounds."""

from __future__ import annotations

import random

import pytest

from shared.backoff import backoff_delay, envelope, jittered, poll_countdown


class _Fixed(random.Random):
    """A Random whose ``random()`` returns a chosen value (to hit the jitter bounds)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_envelope_is_exponential_until_the_cap():
    values = [envelope(n, base=1.0, factor=2.0, cap=30.0) for n in range(8)]
    assert values == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_envelope_is_monotone_and_never_overflows():
    values = [envelope(n, base=0.5, factor=3.0, cap=100.0) for n in range(0, 5000, 7)]
    assert values == sorted(values)
    assert values[-1] == 100.0


@pytest.mark.parametrize("draw", [0.0, 0.999999])
def test_backoff_jitter_bounds(draw):
    for attempt in range(10):
        env = envelope(attempt, base=1.0, factor=2.0, cap=30.0)
        value = backoff_delay(attempt, base=1.0, factor=2.0, cap=30.0, jitter=0.5, rng=_Fixed(draw))
        assert env * 0.5 <= value <= env
    assert backoff_delay(3, jitter=0.5, rng=_Fixed(0.0)) == 8.0
    assert backoff_delay(3, jitter=0.5, rng=_Fixed(0.999999)) == pytest.approx(4.0, rel=1e-5)


def test_backoff_never_exceeds_cap_with_real_randomness():
    rng = random.Random(1234)
    samples = [backoff_delay(n % 20, cap=7.0, jitter=1.0, rng=rng) for n in range(2000)]
    assert max(samples) <= 7.0
    assert min(samples) >= 0.0
    # jitter really spreads values (not all equal to the envelope)
    assert len({round(s, 6) for s in samples}) > 100


def test_no_jitter_is_exact():
    assert backoff_delay(2, base=1.5, factor=2.0, cap=60.0, jitter=0.0) == 6.0


def test_poll_countdown_grows_to_maximum_and_stays_under_it():
    rng = random.Random(7)
    values = [
        poll_countdown(n, initial=10.0, maximum=300.0, factor=1.5, jitter=0.1, rng=rng)
        for n in range(40)
    ]
    assert values[0] <= 10.0
    assert values[0] >= 9.0
    assert all(v <= 300.0 for v in values)
    assert values[-1] >= 270.0
    envelopes = [envelope(n, base=10.0, factor=1.5, cap=300.0) for n in range(40)]
    assert envelopes == sorted(envelopes)
    for value, env in zip(values, envelopes, strict=True):
        assert 0.9 * env <= value <= env


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": -1, "base": 1.0, "factor": 2.0, "cap": 1.0}, "step"),
        ({"step": 0, "base": 1.0, "factor": 0.5, "cap": 1.0}, "factor"),
        ({"step": 0, "base": -1.0, "factor": 2.0, "cap": 1.0}, "base"),
    ],
)
def test_envelope_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        envelope(**kwargs)


def test_jitter_must_be_a_fraction():
    with pytest.raises(ValueError, match="jitter"):
        jittered(1.0, jitter=1.5)
