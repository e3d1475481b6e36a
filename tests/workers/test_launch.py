"""A run's plan is sent once, and again only if no earlier call got it to the broker."""

from __future__ import annotations

from pathlib import Path

from shared import names
from shared.pipeline.start import StartedRun
from shared.settings import Settings
from workers.app import configure
from workers.tasks.run import launch


def test_launch_sends_the_plan_once(tmp_path: Path) -> None:
    configure(Settings(state_uri=str(tmp_path / "state")))  # embedded: an in-memory queue
    out = tmp_path / "out"
    started = StartedRun(run_id="r1", output_uri=str(out), created=True)
    assert launch(started) is True
    assert (out / names.LAUNCHED).exists()
    again = started.model_copy(update={"created": False})
    assert launch(again) is False


def test_a_claim_that_never_reached_the_broker_is_launched_by_the_next_call(
    tmp_path: Path,
) -> None:
    configure(Settings(state_uri=str(tmp_path / "state")))
    out = tmp_path / "out"
    retried = StartedRun(run_id="r2", output_uri=str(out), created=False)
    assert launch(retried) is True and (out / names.LAUNCHED).exists()
