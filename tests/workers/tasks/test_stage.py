"""The stage policy of ``workers.tasks._stage`` on real tasks, run in this process
(``Task.apply``) against the emulator and local storage: what ends a part at once, what holds
nothing when it fails, what is never reset, and a poison message parked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry

from shared.apikeys import fingerprint
from shared.coordination import coordination_redis
from shared.errors import RetryLater
from shared.pipeline.context import RunContext
from shared.pipeline.merge import merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.pipeline.upload import upload_attempt
from shared.poison import Deliveries
from shared.run import layout
from shared.run.spec import RunSpec
from shared.settings import Settings
from tests.fixtures.emulator import EmulatorHandle
from workers.app import configure
from workers.tasks import _stage
from workers.tasks import shard as shard_tasks


@pytest.fixture
def settings(emulator: EmulatorHandle, tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(
        api_key=emulator.api_key,
        api_base_url=emulator.base_url,
        state_uri=str(tmp_path / "state"),
        http_max_retries=0,
    )
    configure(settings)  # embedded: the in-process fake Redis for admission and counts
    coordination_redis(settings).flushall()
    yield settings


def uploaded(settings: Settings, tmp_path: Path, lines: int = 6) -> RunContext:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(
        json.dumps({"key": f"k{n}", "request": {"contents": [{"parts": [{"text": "hi"}]}]}})
        + "\n" for n in range(1, lines + 1)))
    started = register_run(settings, RunSpec(input_uri=str(source),
                                             output_uri=str(tmp_path / "out")))
    ctx = RunContext(settings, started.run_id, started.output_uri)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    return ctx


def errors_of(ctx: RunContext) -> list[dict[str, Any]]:
    path = Path(ctx.output_uri) / layout.shard_errors(0)
    return [json.loads(line) for line in path.read_text().splitlines()]


def live_jobs(ctx: RunContext, settings: Settings) -> int:
    assert settings.api_key is not None
    return ctx.admission.snapshot(fingerprint(settings.api_key)).live_jobs


@pytest.mark.parametrize(("code", "status"), [(404, "NOT_FOUND"), (400, "INVALID_ARGUMENT")])
def test_a_create_the_provider_refuses_ends_the_part_holding_nothing(
    settings: Settings, emulator: EmulatorHandle, tmp_path: Path, code: int, status: str
) -> None:
    ctx = uploaded(settings, tmp_path)
    emulator.set_faults({"http": [{"endpoint": "batches.create", "code": code,
                                   "message": "models/gemini-9 is not found"}]})

    shard_tasks.create.apply(args=(ctx.run_id, ctx.output_uri, 0, 1))

    errors = errors_of(ctx)
    assert len(errors) == 6
    assert {(e["error"]["code"], e["error"]["status"]) for e in errors} == {(code, status)}
    assert ctx.store.outcome(0) is not None  # the shard ended: no cycle
    job = ctx.store.job(0, 1, 0)
    assert job is not None and not job.create_in_flight and job.job_name is None
    assert live_jobs(ctx, settings) == 0


def test_a_model_the_provider_cannot_take_gives_up_before_any_intent(
    settings: Settings, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    ctx = uploaded(settings, tmp_path)
    manifest = ctx.store.manifest().model_copy(update={"model": "gemini 2.5/../x"})
    ctx.storage.write_bytes(layout.MANIFEST, manifest.model_dump_json().encode())

    shard_tasks.create.apply(args=(ctx.run_id, ctx.output_uri, 0, 1))

    errors = errors_of(ctx)
    assert len(errors) == 6 and "model: not a model name" in errors[0]["error"]["message"]
    assert ctx.store.job(0, 1, 0) is None  # no intent, so no lease to wait out
    assert live_jobs(ctx, settings) == 0
    assert emulator.jobs() == []


class _Task:
    """What ``retry`` reads of a bound task: its name, request and ``retry``."""

    name = "shardline.create"

    def __init__(self, failures: int) -> None:
        self.request = SimpleNamespace(kwargs={"failures": failures}, id=None)
        self.sent: dict[str, Any] = {}

    def retry(self, **options: Any) -> Retry:
        self.sent = options
        return Retry()


def test_waiting_neither_resets_nor_raises_the_failure_count(
    settings: Settings, tmp_path: Path
) -> None:
    ctx = uploaded(settings, tmp_path)
    task = _Task(failures=3)

    def wait(_: RunContext) -> None:
        raise RetryLater("create may be in flight elsewhere", 30.0)

    with pytest.raises(Retry):
        _stage._attempt(task, ctx, wait, None, failures=3)  # type: ignore[arg-type]
    assert task.sent["kwargs"]["failures"] == 3


def test_a_poison_message_is_parked_and_fails_the_run_with_every_line_accounted(
    settings: Settings, emulator: EmulatorHandle, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = uploaded(settings, tmp_path)
    deliveries = Deliveries(coordination_redis(settings), limit=settings.poison_max_deliveries)
    for _ in range(settings.poison_max_deliveries):  # three workers died running it
        deliveries.begin("create-0-1")

    shard_tasks.create.apply(args=(ctx.run_id, ctx.output_uri, 0, 1), task_id="create-0-1")

    assert emulator.jobs() == []  # not run again
    [parked] = ctx.store.parked()
    assert (parked.task, parked.task_id, parked.shard, parked.attempt, parked.deliveries) == (
        "shardline.create", "create-0-1", 0, 1, 3)
    assert "poison message" in parked.reason
    assert any("poison message" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)
    assert deliveries.begin("create-0-1") == 1  # parking ended the delivery
    summary = merge_run(ctx)
    assert summary.state == "failed" and summary.error == parked.reason
    assert summary.accounted and summary.counts.errors == 6
    assert all("poison message" in e["error"]["message"] for e in errors_of(ctx))
