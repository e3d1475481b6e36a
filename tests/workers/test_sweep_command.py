"""``shardline sweep``: a dry run reports, a real one frees; others' files are never named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.coordination import coordination_redis
from shared.run import layout
from shared.settings import Settings
from tests.fixtures.emulator import EmulatorHandle
from tests.shared.pipeline.conftest import Harness
from tests.shared.pipeline.test_sweep import raw_upload
from workers.cli import EXIT_FAILURE, EXIT_OK, main


def test_sweep_dry_run_then_for_real(
    env, emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "state")
    env(SHARDLINE_API_KEY=emulator.api_key, SHARDLINE_API_BASE_URL=emulator.base_url,
        SHARDLINE_STATE_URI=state)
    settings = Settings(api_key=emulator.api_key, api_base_url=emulator.base_url,
                        state_uri=state, poll_initial_seconds=0.1, poll_max_seconds=0.5)
    coordination_redis(settings).flushall()  # the embedded fake is process-wide
    harness = Harness(settings, emulator, tmp_path)
    ctx = harness.start(4)
    harness.run(ctx)  # merged: its files are no longer needed
    leaked = raw_upload(emulator, layout.display_name(ctx.run_id, 0, 1, 0), b"y" * 321)
    theirs = raw_upload(emulator, "shared-by-another-tool")

    assert main(["sweep", "--dry-run"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"would delete file {leaked} (321 bytes)" in out
    assert "(dry run: nothing changed)" in out
    assert theirs not in out and "kept 1 not shardline's" in out
    assert {f["name"] for f in emulator.files()} == {leaked, theirs}

    assert main(["sweep", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["files_deleted"], report["bytes_freed"], report["jobs_deleted"]) == (1, 321, 0)
    assert {f["name"] for f in emulator.files()} == {theirs}
    assert emulator.api_key not in json.dumps(report)


def test_sweep_needs_a_key(env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env(SHARDLINE_STATE_URI=str(tmp_path / "state"))
    assert main(["sweep"]) == EXIT_FAILURE
    assert "no API key configured" in capsys.readouterr().err
