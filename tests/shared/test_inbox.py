"""The inbox sweep on real local storage and the real start stage: one run per object version.

``launch`` is the one step replaced: the task passes the real ``workers.launch.launch_run``
(tests/workers/test_beat.py takes that path); here a stand-in keeps its contract (send unless
the run's ``launched`` marker says an earlier call did) and records what it sends.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.errors import ShardlineError
from shared.inbox import CLAIM_TIMEOUT, InboxClaim, claim_key, new_claim, sweep_inbox
from shared.pipeline.start import RegisteredRun, register_run, registry
from shared.run import layout
from shared.run.spec import RunSpec
from shared.run.store import RunStore, dump
from shared.schedule import Inbox
from shared.settings import Settings, load_settings
from shared.storage import open_storage

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LINE = b'{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'


def launch_once(started: RegisteredRun, send: Callable[[str, str], None]) -> bool:
    """``workers.launch.launch_run`` with ``send`` for the broker."""
    storage = open_storage(started.output_uri)
    if not started.created and storage.exists(layout.LAUNCHED):
        return False
    send(started.run_id, started.output_uri)
    storage.create_if_absent(layout.LAUNCHED, b"{}")
    return True


class Recorder:
    """A launch whose broker remembers every plan sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, started: RegisteredRun) -> bool:
        return launch_once(started, lambda run_id, uri: self.calls.append((run_id, uri)))


class Place:
    def __init__(self, root: Path) -> None:
        self.inbox_dir = root / "inbox"
        self.results = root / "results"
        self.inbox_dir.mkdir()
        self.settings = load_settings(state_uri=str(root / "state"))
        self.state = open_storage(self.settings.state_uri)

    def inbox(self, **overrides: Any) -> Inbox:
        fields: dict[str, Any] = {
            "name": "drops", "input_prefix": str(self.inbox_dir),
            "output_prefix": str(self.results), "min_age_seconds": 60,
        }
        return Inbox.model_validate({**fields, **overrides})

    def drop(self, key: str, *, at: datetime = T0, lines: int = 1) -> Path:
        path = self.inbox_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(LINE * lines)
        os.utime(path, (at.timestamp(), at.timestamp()))
        return path

    def claims(self) -> list[InboxClaim]:
        return [InboxClaim.model_validate_json(self.state.read_bytes(info.key))
                for info in self.state.list("inbox/")]

    def runs(self) -> dict[str, str]:
        """input URI -> run id, for every run in the registry."""
        return {entry.input_uri: entry.run_id for entry in registry(self.settings).entries()}


@pytest.fixture
def place(tmp_path: Path) -> Place:
    return Place(tmp_path)


def test_every_object_once_however_often_the_sweep_fires(place: Place) -> None:
    for key in ("a.jsonl", "b.jsonl", "nested/c.jsonl"):
        place.drop(key)
    enqueue = Recorder()
    first = sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=2),
                        launch=enqueue)
    again = sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=3),
                        launch=enqueue)

    assert (first.seen, len(first.started), first.already) == (3, 3, 0)
    assert (again.seen, again.started, again.already) == (3, [], 3)
    runs = place.runs()
    assert sorted(runs) == sorted(str(place.inbox_dir / k)
                                  for k in ("a.jsonl", "b.jsonl", "nested/c.jsonl"))
    assert sorted(run_id for run_id, _ in enqueue.calls) == sorted(runs.values())
    for run_id, output_uri in enqueue.calls:
        manifest = RunStore(open_storage(output_uri)).manifest()
        assert manifest.run_id == run_id
        assert manifest.spec.labels["inbox"] == "drops"
        assert manifest.spec.idempotency_key is not None
        assert manifest.spec.idempotency_key.startswith("inbox:drops:")
    assert {claim.state for claim in place.claims()} == {"started"}


def test_outputs_are_named_for_the_object(place: Place) -> None:
    place.drop("nested/c.jsonl")
    enqueue = Recorder()
    sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=2), launch=enqueue)
    [(_, output_uri)] = enqueue.calls
    relative = Path(output_uri).relative_to(place.results)
    assert relative.parent == Path("nested")
    stem, _, digest = relative.name.rpartition("-")
    assert stem == "c" and len(digest) == 12


def test_young_hidden_and_other_names_wait_or_are_left_alone(place: Place) -> None:
    place.drop("young.jsonl", at=T0 + timedelta(seconds=30))
    place.drop(".partial.jsonl")
    place.drop("_tmp/x.jsonl")
    place.drop("notes.csv")
    enqueue = Recorder()
    inbox = place.inbox()

    early = sweep_inbox(place.settings, inbox, now=T0 + timedelta(seconds=60), launch=enqueue)
    assert (early.seen, early.too_young, early.started) == (1, 1, [])
    late = sweep_inbox(place.settings, inbox, now=T0 + timedelta(seconds=91), launch=enqueue)
    assert (late.seen, late.too_young, len(late.started)) == (1, 0, 1)
    assert list(place.runs()) == [str(place.inbox_dir / "young.jsonl")]

    everything = place.inbox(name="all", suffix="", output_prefix=str(place.results / "all"))
    report = sweep_inbox(place.settings, everything, now=T0 + timedelta(minutes=5),
                         launch=enqueue)
    assert report.seen == 2  # young.jsonl and notes.csv; never .partial or _tmp/


def test_a_changed_object_is_a_new_run(place: Place) -> None:
    path = place.drop("a.jsonl")
    enqueue = Recorder()
    sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=2), launch=enqueue)
    place.drop("a.jsonl", at=T0 + timedelta(minutes=5), lines=2)
    sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=7), launch=enqueue)
    sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=8), launch=enqueue)

    assert len(enqueue.calls) == 2
    (first_id, first_out), (second_id, second_out) = enqueue.calls
    assert first_id != second_id and first_out != second_out
    etags = {claim.etag for claim in place.claims()}
    assert len(etags) == 2
    assert open_storage(str(path.parent)).info(path.name).etag in etags


def test_two_inboxes_on_one_prefix_each_run_the_object(place: Place) -> None:
    place.drop("a.jsonl")
    enqueue = Recorder()
    now = T0 + timedelta(minutes=2)
    sweep_inbox(place.settings, place.inbox(), now=now, launch=enqueue)
    sweep_inbox(place.settings, place.inbox(name="embed", spec={"kind": "embed"},
                                            output_prefix=str(place.results / "embed")),
                now=now, launch=enqueue)
    assert len({run_id for run_id, _ in enqueue.calls}) == 2


def test_a_sweep_that_died_after_starting_is_finished_later(place: Place) -> None:
    place.drop("a.jsonl")

    class BrokerDownError(ShardlineError):
        pass

    def broken(started: RegisteredRun) -> bool:
        def send(run_id: str, output_uri: str) -> None:
            raise BrokerDownError("the broker went away")

        return launch_once(started, send)

    with pytest.raises(BrokerDownError):
        sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=2), launch=broken)
    [claim] = place.claims()
    assert claim.state == "claimed"
    assert list(place.runs().values()) == [claim.run_id]

    enqueue = Recorder()
    soon = sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=3),
                       launch=enqueue)
    assert (soon.already, enqueue.calls) == (1, []), "a live sweep may still hold the claim"
    later = T0 + timedelta(minutes=2) + CLAIM_TIMEOUT + timedelta(seconds=1)
    finished = sweep_inbox(place.settings, place.inbox(), now=later, launch=enqueue)
    assert finished.recovered == [claim.run_id]
    assert enqueue.calls == [(claim.run_id, claim.spec.output_uri)]
    assert [c.state for c in place.claims()] == ["started"]
    sweep_inbox(place.settings, place.inbox(), now=later + timedelta(minutes=1), launch=enqueue)
    assert len(enqueue.calls) == 1
    assert list(place.runs().values()) == [claim.run_id]


def test_a_sweep_that_died_after_launching_does_not_launch_again(place: Place) -> None:
    place.drop("a.jsonl")
    enqueue = Recorder()

    class KilledError(ShardlineError):
        pass

    def launch_then_die(started: RegisteredRun) -> bool:
        enqueue(started)
        raise KilledError("the worker died before marking the claim")

    with pytest.raises(KilledError):
        sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=2),
                    launch=launch_then_die)
    later = T0 + timedelta(minutes=2) + CLAIM_TIMEOUT + timedelta(seconds=1)
    report = sweep_inbox(place.settings, place.inbox(), now=later, launch=enqueue)
    assert len(report.recovered) == 1
    assert len(enqueue.calls) == 1
    assert [c.state for c in place.claims()] == ["started"]


def test_a_claim_whose_run_never_started_is_started_later(place: Place) -> None:
    place.drop("a.jsonl")
    inbox = place.inbox()
    claimed_at = T0 + timedelta(minutes=2)
    [info] = open_storage(inbox.input_prefix).list("")
    claim = new_claim(inbox, info, claimed_at)
    assert place.state.create_if_absent(claim_key(claim), dump(claim))  # and then died

    enqueue = Recorder()
    later = claimed_at + CLAIM_TIMEOUT + timedelta(seconds=1)
    report = sweep_inbox(place.settings, inbox, now=later, launch=enqueue)
    assert report.recovered == [claim.run_id]
    assert enqueue.calls == [(claim.run_id, claim.spec.output_uri)]
    assert place.runs() == {claim.object_uri: claim.run_id}


def test_a_run_that_cannot_start_leaves_a_failed_claim(place: Place) -> None:
    place.drop("a.jsonl")
    inbox = place.inbox()
    [info] = open_storage(inbox.input_prefix).list("")
    taken = new_claim(inbox, info, T0).spec.output_uri
    other = RunSpec(input_uri=str(place.drop("other.txt")), output_uri=taken)
    register_run(place.settings, other)  # someone else's run already owns that output

    enqueue = Recorder()
    report = sweep_inbox(place.settings, inbox, now=T0 + timedelta(minutes=2), launch=enqueue)
    assert report.failed == [str(place.inbox_dir / "a.jsonl")]
    [claim] = place.claims()
    assert claim.state == "failed" and claim.error and "holds another run" in claim.error
    again = sweep_inbox(place.settings, inbox, now=T0 + timedelta(hours=2), launch=enqueue)
    assert (again.already, again.failed, enqueue.calls) == (1, [], [])


def test_a_drop_that_is_not_jsonl_leaves_a_failed_claim_not_a_retry(place: Place) -> None:
    path = place.drop("keys.jsonl")
    path.write_text("AWS_SECRET_ACCESS_KEY=abc\nPATH=/usr/bin\n")
    os.utime(path, (T0.timestamp(), T0.timestamp()))
    enqueue = Recorder()
    report = sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=2),
                         launch=enqueue)
    assert (report.failed, report.vanished, enqueue.calls) == ([str(path)], 0, [])
    [claim] = place.claims()
    assert claim.state == "failed" and claim.error and "not JSONL" in claim.error
    assert not place.results.exists(), "nothing of the file was copied anywhere"
    again = sweep_inbox(place.settings, place.inbox(), now=T0 + timedelta(minutes=3),
                        launch=enqueue)
    assert (again.already, again.failed) == (1, [])


def test_a_sweep_starts_at_most_max_starts(place: Place) -> None:
    for n in range(3):
        place.drop(f"{n}.jsonl")
    enqueue = Recorder()
    inbox = place.inbox(max_starts=2)
    first = sweep_inbox(place.settings, inbox, now=T0 + timedelta(minutes=2), launch=enqueue)
    assert (len(first.started), first.more) == (2, True)
    second = sweep_inbox(place.settings, inbox, now=T0 + timedelta(minutes=3), launch=enqueue)
    assert (len(second.started), second.already, second.more) == (1, 2, False)
    assert len(enqueue.calls) == 3


# ---- two processes at once --------------------------------------------------------------


def _sweeper(state_uri: str, inbox_json: str, log_path: str, barrier: Any, rounds: int) -> None:
    """One "beat process": sweeps the same inbox ``rounds`` times, logging every enqueue."""
    settings: Settings = load_settings(state_uri=state_uri)
    inbox = Inbox.model_validate_json(inbox_json)

    def send(run_id: str, output_uri: str) -> None:
        with open(log_path, "a", encoding="utf-8") as log:  # O_APPEND: whole lines
            log.write(f"{os.getpid()} {run_id}\n")

    def launch(started: RegisteredRun) -> bool:
        return launch_once(started, send)

    barrier.wait(30)
    for n in range(rounds):
        sweep_inbox(settings, inbox, now=T0 + timedelta(minutes=2 + n), launch=launch)


def test_two_processes_sweeping_at_once_start_one_run_per_object(
    place: Place, tmp_path: Path
) -> None:
    objects = 24
    for n in range(objects):
        place.drop(f"{n:02d}.jsonl")
    log_path = tmp_path / "enqueued.log"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    args = (place.settings.state_uri, place.inbox().model_dump_json(), str(log_path), barrier, 3)
    workers = [context.Process(target=_sweeper, args=args) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    lines = log_path.read_text().split()
    run_ids = lines[1::2]
    assert len(run_ids) == objects == len(set(run_ids)), "an object was enqueued twice"
    assert sorted(run_ids) == sorted(place.runs().values())
    assert len(place.runs()) == objects
    assert {claim.state for claim in place.claims()} == {"started"}
    assert len(place.claims()) == objects
    assert all(place.state.exists(layout.registry_run(run_id)) for run_id in run_ids)
