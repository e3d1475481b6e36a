"""The stages on the OpenAI-style and Anthropic providers, driven directly: cancel, a create
whose record was lost, a failed and an expired job, all against the real emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from shared.coordination import coordination_redis
from shared.pipeline.cancel import cancel_run
from shared.pipeline.context import RunContext
from shared.pipeline.create import create_attempt, create_part
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.pipeline.upload import upload_attempt
from shared.run import layout
from shared.run.records import JobRecord
from shared.run.spec import RunOptions, RunSpec
from shared.settings import Settings
from tests.fixtures.emulator import EmulatorHandle
from tests.shared.pipeline.conftest import Harness


def _settings(emulator: EmulatorHandle, tmp: Path, provider: str) -> Settings:
    settings = Settings(
        provider=provider,  # type: ignore[arg-type]
        openai_api_key=emulator.api_key, openai_base_url=emulator.openai_base_url,
        anthropic_api_key=emulator.api_key, anthropic_base_url=emulator.anthropic_base_url,
        state_uri=str(tmp / "state"), poll_initial_seconds=0.1, poll_max_seconds=0.5,
        http_max_retries=2,
    )
    coordination_redis(settings).flushall()
    return settings


def _start(settings: Settings, tmp: Path, lines: int, **options: Any) -> RunContext:
    source = tmp / f"in-{time.monotonic_ns()}.jsonl"
    with source.open("w") as out:
        for n in range(1, lines + 1):
            body = {"max_tokens": 16, "messages": [{"role": "user", "content": f"p {n}"}]}
            out.write(json.dumps({"key": f"k{n}", "request": body}) + "\n")
    spec = RunSpec(input_uri=str(source), output_uri=str(tmp / f"out-{time.monotonic_ns()}"),
                   options=RunOptions(**options))
    started = register_run(settings, spec)
    return RunContext(settings, started.run_id, started.output_uri)


def _errors(ctx: RunContext) -> list[dict[str, Any]]:
    text = (Path(ctx.output_uri) / layout.ERRORS).read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_cancel_stops_live_jobs(provider: str, emulator: EmulatorHandle, tmp_path: Path) -> None:
    emulator.set_faults({"jobs": [{"pending_seconds": 3600}]})
    settings = _settings(emulator, tmp_path, provider)
    ctx = _start(settings, tmp_path, 4)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_part(ctx, 0, 1, ctx.store.require_attempt(0, 1).parts[0])
    assert cancel_run(ctx)["cancelled_jobs"] == 1
    summary = Harness(settings, emulator, tmp_path).run(ctx)
    assert summary.state == "cancelled" and summary.counts.errors == 4
    assert {e["error"]["status"] for e in _errors(ctx)} == {"CANCELLED"}


def test_openai_create_adopts_a_batch_whose_record_was_lost(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    ctx = _start(_settings(emulator, tmp_path, "openai"), tmp_path, 3)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    part = ctx.store.require_attempt(0, 1).parts[0]
    upload = ctx.store.upload(0, 1, 0)
    assert upload is not None and upload.file_name is not None
    display = layout.display_name(ctx.run_id, 0, 1, 0)
    # A worker sent the create and died before recording the batch it got.
    ctx.store.create_job(0, 1, 0, JobRecord(display_name=display,
                                            key_fingerprint=upload.key_fingerprint,
                                            model=ctx.manifest.model,
                                            file_name=upload.file_name))
    made = ctx.provider(upload.key_fingerprint).create_job(
        model=ctx.manifest.model, kind="generate", display_name=display,
        file_name=upload.file_name)
    job = create_part(ctx, 0, 1, part)
    assert job.job_name == made.name
    assert len(emulator.jobs()) == 1


def test_openai_failed_and_expired_batches_are_retried(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator.set_faults({"jobs": [
        {"display_name_contains": "-s00000-a01-", "fail": {"code": 13, "message": "boom"}},
        {"display_name_contains": "-s00001-a01-", "expire": True},
    ]})
    settings = _settings(emulator, tmp_path, "openai")
    ctx = _start(settings, tmp_path, 8, shard_max_requests=4)
    harness = Harness(settings, emulator, tmp_path)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    upload_attempt(ctx, 1, 1)
    create_attempt(ctx, 0, 1)
    create_attempt(ctx, 1, 1)
    emulator.advance(48 * 3600)  # the expiring batch runs out of time
    summary = harness.run(ctx)
    assert summary.state == "succeeded" and summary.counts.results == 8
    reasons = [ctx.store.require_attempt(s, 2).reason for s in (0, 1)]
    assert reasons == ["retry", "expired"]
    assert len(ctx.store.require_attempt(1, 2).parts) == 2  # an expired part comes back halved
