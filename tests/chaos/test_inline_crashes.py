"""SIGKILL the worker while Gemini parts go inline; the run ends with the same bytes as the
crash matrix's clean *file-mode* reference run (same input, same faults).

So one test says two things: inline mode merges exactly as file mode does, and a crash at
the create or collect of an inline part (whose create call carries the requests, streamed
from storage) is recovered like any other: one batch per part, outputs byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.run.store import Summary
from tests.chaos.conftest import (
    OUTPUTS,
    Workers,
    assert_one_job_per_part,
    chaos_env,
    full_only,
    normalized,
    submit,
    wait_killed,
)
from tests.chaos.test_crash_matrix import LEASE, Reference, emulator_config, reference
from tests.fixtures.emulator import running_emulator

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

__all__ = ["reference"]  # the crash matrix's clean file-mode run, shared as a fixture

INLINE = {"gemini_inline_max_bytes": "10000000"}

CASES = [
    pytest.param(None, id="no-crash"),
    pytest.param("create.after_call=kill@2", id="create.after_call"),
    pytest.param("collect.mid_download=kill", id="collect.mid_download"),
    full_only("create.after_intent=kill@2", id="create.after_intent"),
    full_only("poll.after_get=kill@3", id="poll.after_get"),
    full_only("collect.after_staging=kill", id="collect.after_staging"),
]


@pytest.mark.parametrize("failpoints", CASES)
def test_inline_run_matches_the_file_mode_reference(
    failpoints: str | None, reference: Reference, broker: str, workers: Workers,
    tmp_path: Path,
) -> None:
    with running_emulator(emulator_config()) as emulator:
        env = chaos_env(emulator, tmp_path, broker, **LEASE, **INLINE)
        if failpoints is not None:
            armed = workers.start(env, failpoints)
            run = submit(broker, reference.source, tmp_path / "out")
            wait_killed(armed, run)
        else:
            run = submit(broker, reference.source, tmp_path / "out")
        workers.start(env)
        summary = run.wait_summary(workers=workers.started, reconcile_via=broker)

        for name in OUTPUTS:
            assert normalized(run.output / name) == normalized(reference.output / name), name
        expected = Summary.model_validate_json((reference.output / "summary.json").read_bytes())
        assert summary.accounted and summary.counts == expected.counts
        assert len(summary.jobs) == len(expected.jobs)
        assert_one_job_per_part(emulator, run)
        calls = emulator.stats()["requests"]
        assert "files.upload.start" not in calls, "every part went inline"
