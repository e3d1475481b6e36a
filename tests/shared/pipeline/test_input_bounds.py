"""Inputs the plan cannot or must not take whole: formats, nothing usable, too many shards,
and a line longer than the cap. Every case ends with a summary that says what happened."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import pytest

from shared.errors import InputFileError
from shared.pipeline.context import RunContext
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.run import layout
from shared.run.spec import RunOptions, RunSpec


def _start(harness, data: bytes, name: str = "in.jsonl", **options: int) -> RunContext:
    source = harness.tmp / name
    source.write_bytes(data)
    spec = RunSpec(input_uri=str(source), output_uri=str(harness.tmp / f"out-{name}"),
                   options=RunOptions(**options))
    started = register_run(harness.settings, spec)
    return RunContext(harness.settings, started.run_id, started.output_uri)


def _requests(lines: int) -> bytes:
    return b"".join(
        json.dumps({"key": f"k{n}", "request": {"contents": [{"parts": [{"text": str(n)}]}]}}
                   ).encode() + b"\n"
        for n in range(1, lines + 1)
    )


def test_a_gzip_input_runs_like_its_text(harness) -> None:
    ctx = _start(harness, gzip.compress(_requests(12)), "in.jsonl.gz", shard_max_requests=5)
    summary = harness.run(ctx)
    assert summary.state == "succeeded"
    assert summary.counts.model_dump() == {"lines": 12, "results": 12, "errors": 0, "rejected": 0}
    keys = [json.loads(line)["key"] for line in
            (Path(ctx.output_uri) / layout.RESULTS).read_text().splitlines()]
    assert keys == [f"k{n}" for n in range(1, 13)]


@pytest.mark.parametrize(("data", "says"), [
    (_requests(3).decode().encode("utf-16"), "UTF-16 text (byte order mark FF FE)"),
    (b"(\xb5/\xfd" + os.urandom(64), "zstd-compressed"),
])
def test_a_format_we_do_not_read_is_refused_by_name(harness, data: bytes, says: str) -> None:
    with pytest.raises(InputFileError, match=re.escape(says)):
        _start(harness, data)  # at registration: nothing claimed, nothing written
    assert not (harness.tmp / "out-in.jsonl").exists()


def test_the_plan_refuses_a_format_it_does_not_read_too(harness) -> None:
    ctx = _start(harness, _requests(3))
    (harness.tmp / "in.jsonl").write_bytes(b"(\xb5/\xfd" + os.urandom(64))  # replaced since
    with pytest.raises(InputFileError, match="zstd-compressed"):
        plan_run(ctx)
    assert ctx.store.plan() is None


def test_random_bytes_are_refused_before_anything_is_copied(harness) -> None:
    data = os.urandom(3000).replace(b"\n", b"") + b"\n" + os.urandom(3000).replace(b"\n", b"")
    with pytest.raises(InputFileError, match="not JSONL"):
        _start(harness, data)
    assert not (harness.tmp / "out-in.jsonl").exists()


@pytest.mark.parametrize(("data", "says"), [
    (b"", "no usable line: the input is empty"),
    (b"\n  \n\t\n", "no usable line: all 3 lines were rejected"),
    (b'{"request": "not an object"}\n[1, 2]\n', "no usable line: all 2 lines were rejected"),
])
def test_nothing_usable_ends_failed_with_every_line_accounted(
    harness, data: bytes, says: str
) -> None:
    ctx = _start(harness, data)
    summary = harness.run(ctx)
    assert summary.state == "failed" and summary.error is not None
    assert summary.error.startswith(says)
    assert summary.accounted and summary.counts.rejected == summary.counts.lines
    rejected = (Path(ctx.output_uri) / layout.REJECTED).read_text().splitlines()
    assert len(rejected) == summary.counts.lines


def test_more_shards_than_the_bound_fail_the_plan_naming_the_limits(harness) -> None:
    settings = harness.settings.model_copy(update={"max_shards": 3})
    source = harness.tmp / "many.jsonl"
    source.write_bytes(_requests(20))
    spec = RunSpec(input_uri=str(source), output_uri=str(harness.tmp / "many-out"),
                   options=RunOptions(shard_max_requests=5))
    ctx = RunContext(settings, register_run(settings, spec).run_id, spec.output_uri)
    with pytest.raises(InputFileError, match=r"needs more than 3 shards at "
                       r"shard_max_requests=5 .*line 16 would start one more"):
        plan_run(ctx)
    assert ctx.store.plan() is None

    spec = spec.model_copy(update={"output_uri": str(harness.tmp / "few-out"),
                                   "options": RunOptions(shard_max_requests=7)})
    ctx = RunContext(settings, register_run(settings, spec).run_id, spec.output_uri)
    assert len(plan_run(ctx).shards) == 3  # exactly the bound is fine


def test_a_line_over_the_cap_is_rejected_naming_the_setting(harness) -> None:
    settings = harness.settings.model_copy(update={"line_max_bytes": 1000})
    long = json.dumps({"key": "long", "request": {"contents": [{"parts": [{"text": "x" * 5000}]}]}})
    source = harness.tmp / "long.jsonl"
    source.write_bytes(_requests(2) + long.encode() + b"\n")
    spec = RunSpec(input_uri=str(source), output_uri=str(harness.tmp / "long-out"))
    ctx = RunContext(settings, register_run(settings, spec).run_id, spec.output_uri)
    plan = plan_run(ctx)
    assert (plan.lines, plan.accepted, plan.rejected) == (3, 2, 1)
    [rejected] = [json.loads(line) for line in
                  (Path(ctx.output_uri) / layout.PLAN_REJECTED).read_text().splitlines()]
    assert rejected["line"] == 3 and rejected["raw"] == long
    assert "exceeds the 1000-byte line limit (SHARDLINE_LINE_MAX_BYTES)" in rejected["reason"]


def test_a_line_of_150_mb_keeps_the_plan_within_the_line_cap(tmp_path: Path) -> None:
    """The default cap (32 MiB) spools the long line to disk: the plan's peak RSS (a child
    process's ru_maxrss) stays near what the cap allows, far under the line's size."""
    import sys

    from tests.fixtures.services import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    from plan_long_line import measure, write_input

    source = tmp_path / "requests.jsonl"
    assert write_input(source, 150) > 149_000_000
    result = measure(source, tmp_path / "work", 0)  # 0: the settings' default cap

    assert (result["lines"], result["accepted"], result["rejected"]) == (21, 20, 1)
    assert result["peak_above_base_mib"] < 128, result  # measured ~82; held whole: ~700
