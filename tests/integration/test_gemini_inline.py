"""Gemini's inline mode end to end on a worker process: small parts go in the create call,
and a big run's small retry attempts go inline while its first attempts upload files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    API_KEY,
    FAULTS,
    check_output,
    part_count,
    shardline,
    wait_summary,
    write_input,
)

pytestmark = pytest.mark.integration

LINES = 2000


def test_retries_go_inline_while_first_attempts_upload(
    emulator_process_factory: Any, redis_url: str, worker_factory: Any, pipeline_env: Any,
    tmp_path: Path,
) -> None:
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    handle = emulator.handle
    # A first attempt of 500 requests is ~40 kB staged; its 5 % of retries ~2 kB.
    env = pipeline_env(handle.base_url, API_KEY, tmp_path, broker=redis_url,
                       gemini_inline_max_bytes="10000")
    worker_factory(env)
    source, out = tmp_path / "requests.jsonl", tmp_path / "out"
    expected = write_input(source, LINES)

    shardline("submit", str(source), "--out", str(out), "--shard-max-requests", "500", env=env)
    summary = wait_summary(out)

    check_output(out, expected)
    calls = handle.stats()["requests"]
    assert calls["files.upload.start"] == summary.shards  # first attempts only
    assert len(summary.jobs) == part_count(out) > summary.shards  # the retries: inline
    assert calls["batches.create"] == len(summary.jobs)
    assert not [f for f in handle.files() if f["source"] == "UPLOADED"]


def test_a_run_forced_to_files_and_one_by_size(
    emulator_process_factory: Any, pipeline_env: Any, tmp_path: Path
) -> None:
    emulator = emulator_process_factory("--api-key", API_KEY, "--time-scale", "600")
    handle = emulator.handle
    env = pipeline_env(handle.base_url, API_KEY, tmp_path, broker=None,
                       gemini_inline_max_bytes="10000000")
    source = tmp_path / "requests.jsonl"
    expected = write_input(source, 600)

    # The cache is off: the second run sends the same requests on purpose, as files.
    shardline("run", str(source), "--out", str(tmp_path / "inline"), "--json", "--no-cache",
              env=env)
    check_output(tmp_path / "inline", expected)
    assert "files.upload.start" not in handle.stats()["requests"]

    shardline("run", str(source), "--out", str(tmp_path / "files"), "--no-inline", "--json",
              "--no-cache", env=env)
    check_output(tmp_path / "files", expected)
    assert handle.stats()["requests"]["files.upload.start"] == 1
