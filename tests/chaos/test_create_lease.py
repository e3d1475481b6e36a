"""The create lease: a part whose create intent has no job may be mid-call on another worker;
creating it again before that call can have ended would make a second job.

The lease must outlast the longest create call the settings allow (every try of the
client, each bounded by the HTTP timeout, and its sleeps between tries), and no more: after
a worker crash in that window the part waits out the whole lease.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.coordination import coordination_redis
from shared.errors import RetryLater
from shared.pipeline.context import RunContext
from shared.pipeline.create import create_part
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.pipeline.upload import upload_attempt
from shared.run import layout
from shared.run.spec import RunSpec
from shared.run.store import JobRecord, PartPlan, utcnow
from shared.settings import Settings
from tests.chaos.conftest import write_input
from tests.fixtures.emulator import EmulatorHandle

pytestmark = pytest.mark.chaos


def _uploaded(emulator: EmulatorHandle, tmp_path: Path, **fields: object) -> tuple[
    RunContext, PartPlan
]:
    settings = Settings(api_key=emulator.api_key, api_base_url=emulator.base_url,
                        state_uri=str(tmp_path / "state"), **fields)
    coordination_redis(settings).flushall()
    source = tmp_path / "requests.jsonl"
    write_input(source, 20)
    spec = RunSpec(input_uri=str(source), output_uri=str(tmp_path / "out"))
    started = register_run(settings, spec)
    ctx = RunContext(settings, started.run_id, started.output_uri)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    attempt = ctx.store.attempt(0, 1)
    assert attempt is not None
    return ctx, attempt.parts[0]


def _intent(ctx: RunContext, age: timedelta) -> None:
    """A create intent another worker wrote ``age`` ago; its call never reached the API."""
    upload = ctx.store.upload(0, 1, 0)
    assert upload is not None and upload.file_name is not None
    ctx.store.create_job(0, 1, 0, JobRecord(
        display_name=layout.display_name(ctx.run_id, 0, 1, 0),
        key_fingerprint=upload.key_fingerprint, model=ctx.manifest.model,
        file_name=upload.file_name, intent_at=utcnow() - age,
    ))


def test_a_create_that_may_still_be_in_flight_is_not_sent_again(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    # With a 300 s HTTP timeout one create call may legitimately take 300 s; an intent
    # 200 s old may still be answered by a job.
    ctx, part = _uploaded(emulator, tmp_path, http_timeout_seconds=300, http_max_retries=0)
    _intent(ctx, timedelta(seconds=200))
    with pytest.raises(RetryLater, match="may be in flight") as waiting:
        create_part(ctx, 0, 1, part)
    assert waiting.value.countdown >= 100
    assert emulator.jobs() == []


def test_an_intent_older_than_any_call_is_taken_over(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    ctx, part = _uploaded(emulator, tmp_path, http_timeout_seconds=5, http_max_retries=0)
    _intent(ctx, timedelta(seconds=30))
    job = create_part(ctx, 0, 1, part)
    assert [j["name"] for j in emulator.jobs()] == [job.job_name]
