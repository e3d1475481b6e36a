"""The provider's limits: 100 live jobs, enqueued tokens per model, 20 GB of files, per project.

Scaled down so a few parts reach them. Two views:

- The provider enforces them and Shardline's own admission does not know (its limits at the
  defaults): creates and uploads are refused with 429 and RetryInfo (a short one here), the
  tasks wait that long and go again; the run still ends with one job per part.
- Shardline's admission (``shared/admission``) holds parts back before the provider would
  refuse: no 429 at all, and the worker log shows the waits (countdowns capped below the
  short visibility timeout of these tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorConfig
from tests.chaos.conftest import (
    CHUNK,
    Run,
    Workers,
    assert_accounted,
    assert_one_job_per_part,
    chaos_env,
    submit,
    wait_input_files_deleted,
    write_input,
)
from tests.fixtures.emulator import OTHER_KEY, TEST_KEY, EmulatorHandle, running_emulator

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(300)]

LINES = 300
SHARD = 100  # 3 shards of about 8.5 kB, about 2,100 tokens each by the emulator's count


@pytest.fixture
def limited(broker: str, workers: Workers, tmp_path: Path) -> Iterator[Any]:
    """``limited(emulator_fields, **settings)`` → (finished run, emulator, worker log)."""
    stack: list[Any] = []

    def make(emulator_fields: dict[str, Any], **settings: str) -> tuple[Run, EmulatorHandle, str]:
        config = EmulatorConfig.model_validate({
            "api_keys": [TEST_KEY, OTHER_KEY], "time_scale": 120,
            "upload_chunk_granularity": CHUNK, "quota_retry_delay_seconds": 1.0,
            **emulator_fields,
        })
        context = running_emulator(config)
        emulator = context.__enter__()
        stack.append(context)
        env = chaos_env(emulator, tmp_path, broker, http_timeout_seconds="5",
                        http_max_retries="0", **settings)
        worker = workers.start(env)
        source = tmp_path / "requests.jsonl"
        write_input(source, LINES)
        run = submit(broker, source, tmp_path / "out", shard_max_requests=SHARD)
        run.wait_summary(timeout=240, workers=[worker])
        assert_accounted(run, LINES)
        assert_one_job_per_part(emulator, run)
        wait_input_files_deleted(emulator, run)
        return run, emulator, worker.log()

    yield make
    workers.close()
    for context in reversed(stack):
        context.__exit__(None, None, None)


def calls(emulator: EmulatorHandle) -> Counter[str]:
    stats = emulator.stats()
    return Counter({**stats["requests"], **stats["responses"]})


# ---- the provider refuses --------------------------------------------------------------


def test_provider_live_job_limit_is_waited_out(limited: Any) -> None:
    _run, emulator, _ = limited({"max_live_jobs_per_key": 1})
    seen = calls(emulator)
    assert seen["batches.create 429"] >= 1, "the limit was never reached"
    assert seen["batches.create 200"] == 3


def test_provider_token_budget_is_waited_out(limited: Any) -> None:
    _run, emulator, _ = limited({"enqueued_token_budget": 3000})
    seen = calls(emulator)
    assert seen["batches.create 429"] >= 1, "the budget was never reached"
    assert seen["batches.create 200"] == 3


def test_provider_file_storage_quota_is_waited_out(limited: Any) -> None:
    _run, emulator, _ = limited({"storage_bytes_per_key": 18_000})
    seen = calls(emulator)
    # Refused at the start, or at a chunk, which ends the session: a new one follows.
    refused = seen["files.upload.start 429"] + seen["files.upload.chunk 429"]
    assert refused >= 1, "the quota was never reached"
    assert seen["files.upload.start 200"] == 3 + seen["files.upload.chunk 429"]


# ---- Shardline's admission holds back first ----------------------------------------------


def test_admission_keeps_live_jobs_under_the_limit(limited: Any) -> None:
    _run, emulator, log = limited({"max_live_jobs_per_key": 1}, max_live_jobs_per_key="1")
    assert calls(emulator)["batches.create 429"] == 0
    assert "live batch jobs, the limit is 1" in log


def test_admission_keeps_enqueued_tokens_under_the_budget(limited: Any) -> None:
    # Shardline counts request text (about 6 tokens a line here), the emulator the file
    # bytes / 4: a budget of 1,000 of ours admits one 100-line part at a time.
    _run, emulator, log = limited({}, enqueued_token_budget="1000")
    assert calls(emulator)["batches.create 429"] == 0
    assert "would pass the budget of 1000" in log


def test_admission_keeps_file_bytes_under_the_quota(limited: Any) -> None:
    _run, emulator, log = limited({"storage_bytes_per_key": 18_000},
                                 file_storage_budget_bytes="18000")
    seen = calls(emulator)
    assert seen["files.upload.start 429"] + seen["files.upload.chunk 429"] == 0
    assert "bytes of uploaded files" in log


# ---- per Google Cloud project, not per key -----------------------------------------------


def test_admission_counts_the_keys_of_one_project_together(limited: Any) -> None:
    # Two keys of one project at the provider, one live job allowed there. Unlabelled, the
    # pool is one project for admission too (the safe default): never a 429.
    one_project = {"projects": {"projA": [TEST_KEY, OTHER_KEY]}, "max_live_jobs_per_key": 1}
    _run, emulator, log = limited(one_project, api_keys=OTHER_KEY,
                                  max_live_jobs_per_project="1")
    assert calls(emulator)["batches.create 429"] == 0
    assert "project 'default'" in log and "live batch jobs, the limit is 1" in log


def test_keys_of_different_projects_add_capacity(limited: Any) -> None:
    two_projects = {"projects": {"projA": [TEST_KEY], "projB": [OTHER_KEY]},
                    "max_live_jobs_per_key": 1}
    _run, emulator, _ = limited(two_projects, api_keys=f"projA:{TEST_KEY},projB:{OTHER_KEY}",
                                max_live_jobs_per_project="1")
    assert calls(emulator)["batches.create 429"] == 0
    assert {job["keyFingerprint"] for job in emulator.jobs()} == {"project:projA",
                                                                  "project:projB"}
