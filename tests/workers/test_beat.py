"""Beat from the schedule file, driven tick by tick on a controlled clock.

The real scheduler (``ScheduleFileScheduler``, persistent, one shelve file per "beat
process") sends to the app's real in-memory broker; the test reads the messages off the queue
and runs each as a worker would (``Task.apply`` with the message's arguments), so the tasks'
own sends (the plan) land on the same queue and are counted there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import workers.tasks  # noqa: F401 (registers every task on the app)
from shared import names
from shared.errors import InputError, SpecError
from shared.pipeline.start import registry
from shared.run.store import RunStore
from shared.settings import Settings, load_settings
from shared.storage import open_storage
from workers.app import app, configure
from workers.beat import ScheduleFileScheduler, beat_schedule_from
from workers.tasks.periodic import periodic_run

LINE = '{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'


def nightly(root: Path) -> str:
    return f"""
[[run]]
name = "nightly"
cron = "30 2 * * *"
[run.spec]
input_uri = "{root}/in/{{date}}.jsonl"
output_uri = "{root}/out/nightly-{{date}}"
"""


def six_hourly(root: Path) -> str:
    return f"""
[[run]]
name = "six"
every = "6h"
[run.spec]
input_uri = "{root}/in/corpus.jsonl"
output_uri = "{root}/out/six-{{datetime}}"
kind = "embed"
"""


def drops(root: Path) -> str:
    return f"""
[[inbox]]
name = "drops"
input_prefix = "{root}/inbox"
output_prefix = "{root}/results"
every = "1m"
"""


@dataclass
class Message:
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]


class Clock:
    """The app's clock, so every schedule and the scheduler's heap run on it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, *args: int, micro: int = 0) -> None:
        self.now = datetime(*args, tzinfo=UTC) + timedelta(microseconds=micro)


@dataclass
class Beat:
    root: Path
    clock: Clock
    settings: Settings
    schedulers: list[ScheduleFileScheduler] = field(default_factory=list)

    @property
    def schedule_file(self) -> Path:
        return self.root / "schedule.toml"

    def write(self, *tables: str) -> None:
        self.schedule_file.write_text("\n".join(tables))

    def scheduler(self, process: str = "a") -> ScheduleFileScheduler:
        """One beat process: its own persistent schedule file."""
        scheduler = ScheduleFileScheduler(app, schedule_filename=str(self.root / f"beat-{process}"))
        self.schedulers.append(scheduler)
        return scheduler

    def input(self, name: str) -> Path:
        path = self.root / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LINE)
        return path

    def sent(self) -> list[Message]:
        """Take every message off the broker's queue (the built-in reconciler's aside)."""
        messages: list[Message] = []
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue(names.QUEUE, no_ack=True)
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        break
                    args, kwargs, _ = message.decode()
                    if message.headers["task"] == names.TASK_RECONCILE:
                        continue
                    messages.append(Message(message.headers["task"], args, kwargs,
                                            message.headers))
            finally:
                queue.close()
        return messages

    def work(self, messages: list[Message]) -> list[dict[str, Any]]:
        """Run each message as a worker would; their own sends stay on the queue."""
        results = []
        for message in messages:
            outcome = app.tasks[message.task].apply(args=message.args, kwargs=message.kwargs)
            results.append(outcome.get())
        return results


@pytest.fixture
def beat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Beat]:
    clock = Clock(datetime(2026, 11, 26, 2, 29, 59, tzinfo=UTC))
    # Beat sends one due entry per tick: keep the built-in reconciler out of these ticks.
    settings = load_settings(state_uri=str(tmp_path / "state"),
                             schedule_file=tmp_path / "schedule.toml",
                             reconcile_interval_seconds=10**9)
    monkeypatch.setattr(app, "_settings", app._settings)
    configure(settings)
    # Schedules without an app of their own ask the current app for the time.
    app.set_current()
    monkeypatch.setattr(app, "now", clock)
    harness = Beat(tmp_path, clock, settings)
    harness.sent()  # nothing left over from elsewhere
    yield harness
    for scheduler in harness.schedulers:
        scheduler.close()
    harness.sent()


def test_entries_carry_only_names(beat: Beat) -> None:
    beat.write(nightly(beat.root), drops(beat.root))
    entries = beat_schedule_from(beat.settings)
    assert set(entries) == {"run:nightly", "inbox:drops"}
    assert entries["run:nightly"]["task"] == names.TASK_PERIODIC_RUN
    assert entries["run:nightly"]["args"] == ("nightly",)
    assert entries["inbox:drops"]["task"] == names.TASK_INBOX_SWEEP
    assert entries["inbox:drops"]["args"] == ("drops",)
    assert entries["inbox:drops"]["options"] == {"expires": 60.0}
    assert all(set(entry) <= {"task", "schedule", "args", "options"} for entry in entries.values())


def test_the_app_runs_beat_with_this_scheduler() -> None:
    assert app.conf.beat_scheduler == "workers.beat:ScheduleFileScheduler"


def test_a_cron_run_fires_at_its_time_with_its_slot(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    scheduler = beat.scheduler()
    assert scheduler.tick() > 0
    assert beat.sent() == []

    beat.clock.at(2026, 11, 26, 2, 30, 0, micro=300_000)
    assert scheduler.tick() == 0
    scheduler.tick()
    [message] = beat.sent()
    assert (message.task, message.args) == (names.TASK_PERIODIC_RUN, ["nightly"])
    assert message.kwargs == {"slot": "2026-11-26T02:30:00+00:00"}


def test_two_beats_firing_the_same_slot_start_one_run(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    beat.input("2026-11-26.jsonl")
    first, second = beat.scheduler("a"), beat.scheduler("b")
    beat.clock.at(2026, 11, 26, 2, 30, 0, micro=100_000)
    first.tick()
    beat.clock.at(2026, 11, 26, 2, 30, 1, micro=700_000)
    second.tick()
    fires = beat.sent()
    assert [m.kwargs["slot"] for m in fires] == ["2026-11-26T02:30:00+00:00"] * 2

    results = beat.work(fires)
    assert [r["created"] for r in results] == [True, False]
    assert results[0]["run_id"] == results[1]["run_id"]
    [plan] = beat.sent()
    assert (plan.task, plan.args) == (names.TASK_PLAN, [results[0]["run_id"],
                                                        results[0]["output_uri"]])
    [entry] = list(registry(beat.settings).entries())
    assert entry.output_uri == str(beat.root / "out" / "nightly-2026-11-26")
    manifest = RunStore(open_storage(entry.output_uri)).manifest()
    assert manifest.spec.idempotency_key == "periodic:nightly:20261126T023000Z"

    beat.work(fires)  # delivered once more (a redelivery): still that one run, no new plan
    assert beat.sent() == []


def test_the_next_slot_is_the_next_run(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    beat.input("2026-11-26.jsonl")
    beat.input("2026-11-27.jsonl")
    scheduler = beat.scheduler()
    beat.clock.at(2026, 11, 26, 2, 30, 1)
    scheduler.tick()
    beat.clock.at(2026, 11, 27, 2, 30, 2)
    scheduler.tick()
    results = beat.work(beat.sent())
    assert [r["slot"] for r in results] == ["2026-11-26T02:30:00+00:00",
                                            "2026-11-27T02:30:00+00:00"]
    assert len({r["run_id"] for r in results}) == 2
    assert len([m for m in beat.sent() if m.task == names.TASK_PLAN]) == 2


def test_every_fires_on_epoch_aligned_slots(beat: Beat) -> None:
    beat.write(six_hourly(beat.root))
    beat.clock.at(2026, 11, 26, 5, 59, 59)
    scheduler = beat.scheduler()
    assert scheduler.tick() == pytest.approx(1.0, abs=0.05)
    slots = []
    for moment in [(6, 0, 2), (6, 30, 0), (11, 59, 59), (12, 0, 0), (17, 0, 0)]:
        beat.clock.at(2026, 11, 26, *moment)
        scheduler.tick()
        slots += [m.kwargs["slot"] for m in beat.sent()]
    assert slots == ["2026-11-26T06:00:00+00:00", "2026-11-26T12:00:00+00:00"]


def test_a_restarted_beat_catches_up_once_with_the_latest_slot(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    scheduler = beat.scheduler()
    beat.clock.at(2026, 11, 26, 2, 30, 1)
    scheduler.tick()
    scheduler.close()
    beat.schedulers.remove(scheduler)
    assert len(beat.sent()) == 1

    beat.clock.at(2026, 11, 29, 10, 0, 0)  # down for three days
    restarted = beat.scheduler()
    restarted.tick()
    restarted.tick()
    assert [m.kwargs["slot"] for m in beat.sent()] == ["2026-11-29T02:30:00+00:00"]


def test_the_inbox_sweep_starts_one_run_per_object(beat: Beat) -> None:
    beat.write(drops(beat.root))
    inbox = beat.root / "inbox"
    inbox.mkdir()
    old = time.time() - 3600
    for name in ("a.jsonl", "b.jsonl"):
        (inbox / name).write_text(LINE)
        os.utime(inbox / name, (old, old))
    first, second = beat.scheduler("a"), beat.scheduler("b")
    beat.clock.at(2026, 11, 26, 2, 30, 0, micro=200_000)
    first.tick()
    second.tick()
    sweeps = beat.sent()
    assert [(m.task, m.args) for m in sweeps] == [(names.TASK_INBOX_SWEEP, ["drops"])] * 2
    assert all(m.headers["expires"] for m in sweeps)

    reports = beat.work(sweeps)
    assert [len(r["started"]) for r in reports] == [2, 0]
    plans = beat.sent()
    assert sorted(p.args[0] for p in plans) == sorted(reports[0]["started"])

    beat.clock.at(2026, 11, 26, 2, 31, 0, micro=100_000)
    first.tick()
    assert beat.work(beat.sent())[0]["already"] == 2
    assert beat.sent() == []


def test_a_bad_file_stops_beat_at_start_with_one_line(
    beat: Beat, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line and exit 2: an exception would reach Celery's stderr proxy, which logs
    its traceback one character a line."""
    beat.write(nightly(beat.root).replace("30 2 * * *", "30 2 * *"))
    with (
        caplog.at_level(logging.INFO, logger="shardline.beat"),
        pytest.raises(SystemExit) as caught,
    ):
        beat.scheduler()
    assert caught.value.code == 2
    [record] = caplog.records
    assert record.levelno == logging.CRITICAL and record.exc_info is None
    assert str(beat.schedule_file) in record.getMessage()
    assert "[[run]] #1 'nightly' cron" in record.getMessage()


def test_no_schedule_file_no_entries(beat: Beat) -> None:
    configure(load_settings(state_uri=beat.settings.state_uri))
    scheduler = beat.scheduler()
    assert not [name for name in scheduler.schedule if name.startswith(("run:", "inbox:"))]
    scheduler.tick()
    assert beat.sent() == []


def test_an_edited_file_is_read_again(beat: Beat, caplog: pytest.LogCaptureFixture) -> None:
    beat.write(nightly(beat.root))
    scheduler = beat.scheduler()
    assert {"run:nightly"} <= set(scheduler.schedule)

    beat.write(nightly(beat.root), drops(beat.root))
    scheduler.tick()
    assert {"run:nightly", "inbox:drops"} <= set(scheduler.schedule)

    caplog.set_level(logging.ERROR, logger="shardline.beat")
    beat.write(nightly(beat.root), "[[inbox]]\nname = 'broken'\n")
    scheduler.tick()
    assert {"run:nightly", "inbox:drops"} <= set(scheduler.schedule)
    assert str(beat.schedule_file) in caplog.text and "keeping the schedule" in caplog.text

    beat.write(drops(beat.root))
    scheduler.tick()
    assert "run:nightly" not in scheduler.schedule
    beat.clock.at(2026, 11, 26, 2, 30, 0, micro=500_000)
    scheduler.tick()
    assert [m.task for m in beat.sent()] == [names.TASK_INBOX_SWEEP]


def test_a_manual_call_maps_to_the_slot_it_falls_in(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    beat.input("2026-11-26.jsonl")
    result = periodic_run.apply(args=["nightly"], kwargs={"slot": "2026-11-26T13:45:00"}).get()
    assert result["slot"] == "2026-11-26T02:30:00+00:00"
    assert result["created"] is True


def test_a_worker_without_the_file_says_so(beat: Beat) -> None:
    configure(load_settings(state_uri=beat.settings.state_uri))
    with pytest.raises(SpecError, match="SHARDLINE_SCHEDULE_FILE is not set on this worker"):
        periodic_run.apply(args=["nightly"]).get()


def test_a_missing_input_fails_the_fire_naming_the_file(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    # (the eager result re-raises it as its base class: InputFileError takes two arguments)
    with pytest.raises(InputError, match=r"in/2026-11-26\.jsonl: no such file"):
        periodic_run.apply(args=["nightly"], kwargs={"slot": "2026-11-26T02:30:00+00:00"}).get()
    assert list(registry(beat.settings).entries()) == []


def test_beat_always_runs_the_reconciler(beat: Beat) -> None:
    beat.write(nightly(beat.root))
    scheduler = beat.scheduler()
    entry = scheduler.schedule["shardline-reconcile"]
    assert entry.task == names.TASK_RECONCILE
    assert entry.schedule.run_every.total_seconds() == app.settings.reconcile_interval_seconds
