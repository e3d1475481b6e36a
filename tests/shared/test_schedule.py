"""The schedule file: parsing, checks with clear errors, slots and the specs they expand to."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab

from shared.errors import InputFileError, SpecError
from shared.schedule import (
    Schedule,
    cron_slot,
    floor_slot,
    load_schedule,
    parse_cron,
    parse_duration,
    schedule_of,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "beat" / "schedule.example.toml"

NIGHTLY = """
[[run]]
name = "nightly"
cron = "30 2 * * *"
[run.spec]
input_uri = "/data/in/{date}.jsonl"
output_uri = "/data/out/{date}"
kind = "embed"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    return path


def problem(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as caught:
        load_schedule(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


def run_table(*, timing: str = 'cron = "30 2 * * *"', **spec: str) -> str:
    fields = {"input_uri": "/data/in/{date}.jsonl", "output_uri": "/data/out/{date}", **spec}
    body = "\n".join(f'{key} = "{value}"' for key, value in fields.items())
    return f'[[run]]\nname = "r"\n{timing}\n[run.spec]\n{body}\n'


# ---- durations and slots ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("6h", timedelta(hours=6)),
     ("1d", timedelta(days=1)), ("1h30m", timedelta(minutes=90)), (45, timedelta(seconds=45))],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "6", "1w", "m5", "1.5h", "-1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_every_slots_count_from_the_epoch() -> None:
    moment = datetime(2026, 11, 26, 13, 7, 41, tzinfo=UTC)
    assert floor_slot(moment, timedelta(hours=6)) == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert floor_slot(moment, timedelta(minutes=1)) == datetime(2026, 11, 26, 13, 7, tzinfo=UTC)
    assert floor_slot(moment, timedelta(days=1)) == datetime(2026, 11, 26, tzinfo=UTC)


def test_cron_slot_is_the_latest_fire_time() -> None:
    nightly = parse_cron("30 2 * * *")
    assert cron_slot(nightly, datetime(2026, 11, 26, 2, 30, 5, tzinfo=UTC)) == datetime(
        2026, 11, 26, 2, 30, tzinfo=UTC)
    assert cron_slot(nightly, datetime(2026, 11, 26, 2, 29, 59, tzinfo=UTC)) == datetime(
        2026, 11, 25, 2, 30, tzinfo=UTC)
    # Celery's semantics: day of month AND day of week (2027-03-01 is a Monday).
    assert cron_slot(parse_cron("0 9 1 * 1"), datetime(2026, 11, 26, tzinfo=UTC)) == datetime(
        2026, 6, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression",
    ["30 2 * * *", "*/15 * * * *", "0 9-17 * * 1-5", "5 0 1,15 * *", "0 0 29 2 *", "7 3 * 6 0",
     "0 9 1 * 1"],
)
def test_cron_slot_agrees_with_celery_beat(expression: str) -> None:
    """The slot is a time beat fires at, and beat fires at no later time up to now."""
    schedule = parse_cron(expression)
    rng = random.Random(expression)
    for _ in range(40):
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        slot = cron_slot(schedule, now)
        assert slot <= now
        beat = crontab(minute=schedule._orig_minute, hour=schedule._orig_hour,
                       day_of_week=schedule._orig_day_of_week,
                       day_of_month=schedule._orig_day_of_month,
                       month_of_year=schedule._orig_month_of_year,
                       nowfun=lambda now=now: now)
        assert beat.is_due(slot - timedelta(minutes=1)).is_due, (expression, now, slot)
        assert not beat.is_due(slot).is_due, (expression, now, slot)


# ---- loading -----------------------------------------------------------------------------


def test_the_example_file_loads() -> None:
    schedule = load_schedule(EXAMPLE)
    assert schedule.run and schedule.inbox


def test_no_file_means_no_schedule() -> None:
    assert schedule_of(None) == Schedule()


def test_a_run_expands_its_slot(tmp_path: Path) -> None:
    run = load_schedule(write(tmp_path, NIGHTLY)).run_named("nightly")
    slot = run.slot_at(datetime(2026, 11, 26, 2, 30, 1, tzinfo=UTC))
    spec = run.spec_for(slot)
    assert spec.input_uri == "/data/in/2026-11-26.jsonl"
    assert spec.output_uri == "/data/out/2026-11-26"
    assert spec.kind == "embed"
    assert spec.idempotency_key == "periodic:nightly:20261126T023000Z"
    assert spec.labels == {"schedule": "nightly", "slot": "20261126T023000Z"}
    later = run.spec_for(run.slot_at(datetime(2026, 11, 26, 23, 59, tzinfo=UTC)))
    assert later == spec, "every moment of a slot is the same run"


def test_a_run_may_set_a_once_a_day_key(tmp_path: Path) -> None:
    text = run_table(timing='every = "1h"', idempotency_key="daily-{date}")
    run = load_schedule(write(tmp_path, text)).run_named("r")
    first = run.spec_for(run.slot_at(datetime(2026, 11, 26, 1, 0, tzinfo=UTC)))
    second = run.spec_for(run.slot_at(datetime(2026, 11, 26, 7, 0, tzinfo=UTC)))
    assert first.idempotency_key == second.idempotency_key == "daily-2026-11-26"
    assert first.model_dump(exclude={"labels"}) == second.model_dump(exclude={"labels"})


def test_inbox_defaults(tmp_path: Path) -> None:
    text = '[[inbox]]\nname = "drops"\ninput_prefix = "s3://b/in/"\noutput_prefix = "s3://b/out/"\n'
    inbox = load_schedule(write(tmp_path, text)).inbox_named("drops")
    assert inbox.every == timedelta(minutes=1)
    assert (inbox.suffix, inbox.min_age_seconds, inbox.spec.kind) == (".jsonl", 60.0, "generate")


def test_unknown_names_are_spec_errors(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, NIGHTLY))
    with pytest.raises(SpecError, match="no \\[\\[run\\]\\] named 'other'"):
        schedule.run_named("other")
    with pytest.raises(SpecError, match="no \\[\\[inbox\\]\\] named 'nightly'"):
        schedule.inbox_named("nightly")


# ---- a bad file names itself and the problem -----------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such schedule file") as caught:
        load_schedule(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(caught.value)


def test_not_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in problem(tmp_path, "[[run]\nname = 1\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[runs]]\nname = 'x'\n", "runs: Extra inputs are not permitted"),
        (run_table(timing='cron = "30 2 * *"'), "[[run]] #1 'r' cron: cron '30 2 * *' needs 5"),
        (run_table(timing='cron = "61 2 * * *"'), "cron '61 2 * * *'"),
        (run_table(timing='cron = "0 0 * * *"\nevery = "1d"'), "exactly one of cron or every"),
        (run_table(timing='every = "soon"'), "every: not a duration: 'soon'"),
        (run_table(output_uri="/data/out/{day}"), "unknown placeholder {day}"),
        (run_table(output_uri="/data/out"), "every fire needs its own output"),
        (run_table(output_uri="out/{date}"), "must be an absolute path or a URI"),
        (run_table(kind="poem"), "spec.kind: Input should be 'generate' or 'embed'"),
        (run_table(colour="red"), "spec.colour: Extra inputs are not permitted"),
        (run_table(idempotency_key="fixed"), "idempotency_key must contain {date} or {datetime}"),
        (run_table(timing='every = "6h"'), "fires more than once a day"),
        (run_table(idempotency_key="k-{date}", input_uri="/in/{datetime}.jsonl",
                   output_uri="/out/{date}"), "changes once a day"),
        (run_table() + run_table(), "two [[run]] tables are named 'r'"),
        ('[[inbox]]\nname = "i"\ninput_prefix = "/d/in"\noutput_prefix = "/d/in/out"\n',
         "must not contain one another"),
        ('[[inbox]]\nname = "i"\ninput_prefix = "/d/in"\noutput_prefix = "/d/out"\n'
         '[inbox.spec]\ninput_uri = "/x"\n', "spec.input_uri: Extra inputs are not permitted"),
    ],
)
def test_problems_are_named(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problem(tmp_path, text)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    message = problem(tmp_path, run_table(timing='cron = "x"') + NIGHTLY.replace(
        'kind = "embed"', 'kind = "poem"'))
    assert "[[run]] #1 'r' cron" in message
    assert "[[run]] #2 'nightly'" in message and "spec.kind" in message
