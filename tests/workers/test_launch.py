"""A run's plan is sent once, and again only if no earlier call got it to the broker."""

from __future__ import annotations

from pathlib import Path

from shared.pipeline.start import RegisteredRun
from shared.run import layout
from shared.settings import Settings
from workers.app import configure
from workers.launch import launch_run


def test_launch_sends_the_plan_once(tmp_path: Path) -> None:
    configure(Settings(state_uri=str(tmp_path / "state")))  # embedded: an in-memory queue
    out = tmp_path / "out"
    started = RegisteredRun(run_id="r1", output_uri=str(out), created=True)
    assert launch_run(started) is True
    assert (out / layout.LAUNCHED).exists()
    again = started.model_copy(update={"created": False})
    assert launch_run(again) is False


def test_a_claim_that_never_reached_the_broker_is_launched_by_the_next_call(
    tmp_path: Path,
) -> None:
    configure(Settings(state_uri=str(tmp_path / "state")))
    out = tmp_path / "out"
    retried = RegisteredRun(run_id="r2", output_uri=str(out), created=False)
    assert launch_run(retried) is True and (out / layout.LAUNCHED).exists()
