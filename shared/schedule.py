"""The schedule file an operator edits: periodic runs and inbox sweeps (TOML).

::

    [[run]]                          # a periodic run
    name = "nightly-embeddings"
    cron = "30 2 * * *"              # or: every = "6h"
    [run.spec]                       # a RunSpec; {date} and {datetime} expand at fire time
    input_uri = "s3://bucket/in/{date}.jsonl"
    output_uri = "s3://bucket/out/{date}"
    kind = "embed"

    [[inbox]]                        # a run for every new object under a prefix
    name = "drops"
    input_prefix = "s3://bucket/inbox/"
    output_prefix = "s3://bucket/results/"
    every = "1m"
    [inbox.spec]                     # RunSpec fields other than input, output and key
    model = "gemini-2.5-flash"

Times are UTC (the Celery app's timezone). Every fire has a *slot*: the scheduled time it
stands for (the latest cron time, or the start of the current ``every`` period counted from
the epoch). The slot, never the moment a beat process happened to fire, fills the
placeholders and the default idempotency key, so two beats firing the same slot start one run.

``celery.schedules`` is used here only to parse cron expressions, with the exact semantics
beat applies (day of month *and* day of week must both match, unlike classic cron).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from celery.schedules import ParseException, crontab
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.errors import InputFileError, SpecError
from shared.run.spec import Kind, RunOptions, RunSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
#: What ``{date}`` and ``{datetime}`` become (no ``:``, so they fit in paths and keys).
DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y%m%dT%H%M%SZ"
PLACEHOLDERS = ("date", "datetime")

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")
#: How far back a cron slot is looked for: 28 years covers "29 2 * * 1" (Feb 29 a Monday).
_CRON_LOOKBACK_DAYS = 366 * 29


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"1h30m"``, a number of seconds, or ISO 8601."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string such as '15m' or a number of seconds")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if not isinstance(value, str) or value.strip().upper().startswith("P"):
        return value  # a timedelta, or ISO 8601 ("PT1M", how models serialize it)
    match = _DURATION.match(value.strip().lower())
    if not value.strip() or not match:
        raise ValueError(f"not a duration: {value!r} (e.g. '90s', '15m', '6h', '1d', '1h30m')")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def parse_cron(expression: str) -> crontab:
    """Five fields (minute hour day-of-month month day-of-week), read as beat reads them."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expression!r} needs 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(fields)}"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
        )
    except (ValueError, ParseException) as exc:
        raise ValueError(f"cron {expression!r}: {exc}") from None


def floor_slot(moment: datetime, period: timedelta) -> datetime:
    """The start of the ``period`` that holds ``moment``, periods counted from the epoch."""
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // period) * period


def cron_slot(schedule: crontab, moment: datetime) -> datetime:
    """The latest time at or before ``moment`` (UTC) at which ``schedule`` fires."""
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    day: date = moment.date()
    for _ in range(_CRON_LOOKBACK_DAYS):
        if (
            day.month in schedule.month_of_year
            and day.day in schedule.day_of_month
            and day.isoweekday() % 7 in schedule.day_of_week
        ):
            today = day == moment.date()
            hours = [h for h in schedule.hour if not today or h <= moment.hour]
            for hour in sorted(hours, reverse=True):
                this_hour = today and hour == moment.hour
                minutes = [m for m in schedule.minute if not this_hour or m <= moment.minute]
                if minutes:
                    return datetime(day.year, day.month, day.day, hour, max(minutes), tzinfo=UTC)
        day -= DAY
    raise ValueError(f"{schedule!r} never fired in the {_CRON_LOOKBACK_DAYS} days before {moment}")


def expand(text: str, slot: datetime) -> str:
    """Fill ``{date}`` and ``{datetime}`` in ``text`` from ``slot`` (UTC)."""
    values = {"date": slot.strftime(DATE_FORMAT), "datetime": slot.strftime(DATETIME_FORMAT)}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _expand_all(value: Any, slot: datetime) -> Any:
    if isinstance(value, str):
        return expand(value, slot)
    if isinstance(value, dict):
        return {key: _expand_all(item, slot) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_all(item, slot) for item in value]
    return value


def _granularity(text: str) -> str | None:
    """The finest placeholder in ``text``: ``"datetime"``, ``"date"`` or None."""
    found = set(_PLACEHOLDER.findall(text))
    return "datetime" if "datetime" in found else "date" if "date" in found else None


def _check_location(field: str, uri: str) -> None:
    """Workers anywhere read the same file: a relative path would mean a different place."""
    if "://" not in uri and not uri.startswith("/"):
        raise ValueError(f"{field} {uri!r} must be an absolute path or a URI")


def _as_prefix(uri: str) -> str:
    return uri.rstrip("/") + "/"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="Unique among its kind; letters, digits ._-")


class PeriodicRun(_Entry):
    """A run started on a cron or ``every`` schedule, one per slot."""

    cron: str | None = Field(default=None, description="minute hour day month weekday (UTC)")
    every: Duration | None = Field(default=None, description="'6h', '1d', ...: from the epoch")
    spec: dict[str, Any] = Field(description="A RunSpec; strings may hold {date}, {datetime}.")

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)
            return " ".join(value.split())
        return value

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and (value < timedelta(seconds=1) or value % timedelta(seconds=1)):
            raise ValueError("every must be a whole number of seconds, at least 1s")
        return value

    @model_validator(mode="after")
    def _check(self) -> PeriodicRun:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron or every")
        for text in _strings(self.spec):
            unknown = set(_PLACEHOLDER.findall(text)) - set(PLACEHOLDERS)
            if unknown:
                raise ValueError(
                    f"unknown placeholder {{{sorted(unknown)[0]}}} in {text!r}; "
                    "use {date} or {datetime}"
                )
        for field in ("input_uri", "output_uri"):
            if isinstance(self.spec.get(field), str):
                _check_location(f"spec.{field}", self.spec[field])
        try:
            self.spec_for(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))  # every RunSpec rule, now
        except ValidationError as exc:
            raise ValueError("; ".join(
                f"spec.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )) from None
        self._check_keys_and_outputs()
        return self

    def _check_keys_and_outputs(self) -> None:
        """Two fires never share an output, and one key never means two different specs."""
        output = _granularity(self.spec["output_uri"])
        if output is None:
            raise ValueError(
                "spec.output_uri must contain {date} or {datetime}: every fire needs its own output"
            )
        key = self.key_template()
        if _granularity(key) is None:
            raise ValueError("spec.idempotency_key must contain {date} or {datetime}")
        if _granularity(key) == "date":
            per_fire = [
                text for name, value in self.spec.items() if name not in {"labels"}
                for text in _strings(value) if _granularity(text) == "datetime"
            ]
            if per_fire:
                raise ValueError(
                    f"spec.idempotency_key changes once a day but {per_fire[0]!r} changes with "
                    "every fire; use {datetime} in the key or {date} in the spec"
                )
        elif output == "date" and not self.at_most_daily():
            raise ValueError(
                "this schedule fires more than once a day: use {datetime} in spec.output_uri, "
                "or a once-a-day spec.idempotency_key with {date}"
            )

    def key_template(self) -> str:
        """The idempotency key before expansion: the spec's, else one per name and slot."""
        key = self.spec.get("idempotency_key")
        return key if isinstance(key, str) else f"periodic:{self.name}:{{datetime}}"

    def at_most_daily(self) -> bool:
        if self.every is not None:
            return self.every >= DAY
        schedule = parse_cron(self.cron or "")
        return len(schedule.minute) * len(schedule.hour) == 1

    def slot_at(self, moment: datetime) -> datetime:
        """The slot a fire at ``moment`` stands for."""
        if self.every is not None:
            return floor_slot(moment, self.every)
        return cron_slot(parse_cron(self.cron or ""), moment)

    def spec_for(self, slot: datetime) -> RunSpec:
        """The run of ``slot``: placeholders filled, the default key set."""
        body = _expand_all(self.spec, slot)
        body["idempotency_key"] = expand(self.key_template(), slot)
        labels = {"schedule": self.name, "slot": slot.strftime(DATETIME_FORMAT)}
        body["labels"] = {**labels, **body.get("labels", {})}
        return RunSpec.model_validate(body)


class InboxSpec(BaseModel):
    """What every run of an inbox shares (input, output and key come from the object)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    kind: Kind = "generate"
    options: RunOptions = Field(default_factory=RunOptions)
    labels: dict[str, str] = Field(default_factory=dict)


class Inbox(_Entry):
    """A sweep that starts one run for every new object (by key and etag) under a prefix.

    Objects count once they are at least ``min_age_seconds`` old and end with ``suffix``
    (``""`` takes every name); names with a segment starting with ``.`` or ``_`` (temp files,
    ``_SUCCESS`` markers) are never taken. Write a large local file under another name and
    rename it into place, or rely on ``min_age_seconds`` (a file being written keeps
    getting a fresh modification time).
    """

    input_prefix: str = Field(min_length=1)
    output_prefix: str = Field(min_length=1)
    every: Duration = Field(default=timedelta(minutes=1))
    suffix: str = ".jsonl"
    min_age_seconds: float = Field(default=60.0, ge=0)
    max_starts: int = Field(
        default=500, gt=0, description="Runs one sweep starts at most; the next sweep goes on."
    )
    spec: InboxSpec = Field(default_factory=InboxSpec)

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1) or value % timedelta(seconds=1):
            raise ValueError("every must be a whole number of seconds, at least 1s")
        return value

    @model_validator(mode="after")
    def _check(self) -> Inbox:
        _check_location("input_prefix", self.input_prefix)
        _check_location("output_prefix", self.output_prefix)
        inputs, outputs = _as_prefix(self.input_prefix), _as_prefix(self.output_prefix)
        if inputs.startswith(outputs) or outputs.startswith(inputs):
            raise ValueError(
                "input_prefix and output_prefix must not contain one another: the sweep would "
                "take the results for new inputs"
            )
        return self


class Schedule(BaseModel):
    """The whole file: ``[[run]]`` and ``[[inbox]]`` tables."""

    model_config = ConfigDict(extra="forbid")

    run: list[PeriodicRun] = Field(default_factory=list)
    inbox: list[Inbox] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Schedule:
        for kind, entries in (("run", self.run), ("inbox", self.inbox)):
            seen: set[str] = set()
            for entry in entries:
                if entry.name in seen:
                    raise ValueError(f"two [[{kind}]] tables are named {entry.name!r}")
                seen.add(entry.name)
        return self

    def run_named(self, name: str) -> PeriodicRun:
        for run in self.run:
            if run.name == name:
                return run
        raise SpecError(f"the schedule has no [[run]] named {name!r}")

    def inbox_named(self, name: str) -> Inbox:
        for inbox in self.inbox:
            if inbox.name == name:
                return inbox
        raise SpecError(f"the schedule has no [[inbox]] named {name!r}")


def _describe(error: Any, data: Any) -> str:
    """``[[run]] 'nightly' (#1): cron: ...`` for one pydantic error."""
    location = list(error["loc"])
    where = ""
    if len(location) >= 2 and location[0] in {"run", "inbox"} and isinstance(location[1], int):
        kind, index = location[0], location[1]
        try:
            name = data[kind][index].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        where = f"[[{kind}]] #{index + 1}" + (f" {name!r}" if isinstance(name, str) else "")
        location = location[2:]
    field = ".".join(str(part) for part in location)
    message = str(error["msg"]).removeprefix("Value error, ")
    parts = [part for part in (where, field) if part]
    return f"{' '.join(parts)}: {message}" if parts else message


def load_schedule(path: Path | str) -> Schedule:
    """Read and check the schedule file; ``InputFileError`` names the file and every problem."""
    location = Path(path)
    try:
        with location.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputFileError(str(location), "no such schedule file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(str(location), f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise InputFileError(str(location), f"cannot read: {exc.strerror or exc}") from None
    try:
        return Schedule.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, data) for error in exc.errors())
        raise InputFileError(str(location), problems) from None


def schedule_of(schedule_file: Path | None) -> Schedule:
    """The schedule a setting names: empty when it names none."""
    return Schedule() if schedule_file is None else load_schedule(schedule_file)
