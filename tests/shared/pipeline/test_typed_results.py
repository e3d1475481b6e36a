"""Typed results through the real stages and the emulator's malformed-output fault."""

from __future__ import annotations

import json
import time
from pathlib import Path

from shared.pipeline.context import RunContext
from shared.pipeline.start import register_run
from shared.run import layout
from shared.run.spec import OutputSchema, RunOptions, RunSpec

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["title", "score"],
}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _start(harness, lines: int, output_schema: OutputSchema, *, openapi: bool = False,
           **options) -> RunContext:
    source = harness.tmp / f"typed-{time.monotonic_ns()}.jsonl"
    config: dict = {"responseMimeType": "application/json"}
    if openapi:
        config["responseSchema"] = {
            "type": "OBJECT",
            "properties": {"title": {"type": "STRING"}, "score": {"type": "INTEGER"}},
            "required": ["title", "score"],
        }
    else:
        config["responseJsonSchema"] = SCHEMA
    with source.open("w") as out:
        for n in range(1, lines + 1):
            request = {"contents": [{"parts": [{"text": f"rate {n}"}]}], "generationConfig": config}
            out.write(json.dumps({"key": f"k{n}", "request": request}) + "\n")
    spec = RunSpec(
        input_uri=str(source),
        output_uri=str(harness.tmp / f"out-{time.monotonic_ns()}"),
        options=RunOptions(**options),
        output_schema=output_schema,
    )
    started = register_run(harness.settings, spec)
    return RunContext(harness.settings, started.run_id, started.output_uri)


def _malformed(shape: str, rate: float, only: str | None = None) -> dict:
    rule: dict = {"malformed_output": {"rate": rate, "shape": shape}}
    if only:
        rule["display_name_contains"] = only
    return {"seed": 4, "jobs": [rule]}


def test_invalid_outputs_are_retried_until_valid(harness) -> None:
    harness.emulator.set_faults(_malformed("wrong_shape", 0.3, only="-a01-"))
    ctx = _start(harness, 40, OutputSchema(json_schema=SCHEMA))
    summary = harness.run(ctx)
    first = ctx.store.collected(0, 1, 0)
    assert first is not None and first.invalid > 0 and first.retryable == first.invalid
    assert summary.counts.results == 40 and summary.counts.errors == 0
    assert len(summary.jobs) == 2
    for line in _lines(Path(ctx.output_uri) / layout.RESULTS):
        text = line["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert set(json.loads(text)) == {"title", "score"}


def test_always_invalid_output_ends_in_errors_with_the_text(harness) -> None:
    harness.emulator.set_faults(_malformed("not_json", 1.0))
    ctx = _start(harness, 8, OutputSchema(from_request=True),
                 max_request_attempts=2, max_job_attempts=1)
    summary = harness.run(ctx)
    errors = _lines(Path(ctx.output_uri) / layout.ERRORS)
    assert summary.counts.errors == 8 == len(errors) and summary.state == "failed"
    for line in errors:
        assert line["error"]["status"] == "INVALID_OUTPUT" and line["attempts"] == 2
        assert line["error"]["message"].startswith("the response text is not JSON")
        assert line["error"]["text"] and line["key"].startswith("k")
    assert summary.tokens.total > 0, "refused responses were still billed"


def test_the_openapi_response_schema_of_each_request(harness) -> None:
    harness.emulator.set_faults(_malformed("wrong_shape", 0.5))
    ctx = _start(harness, 20, OutputSchema(from_request=True), openapi=True,
                 max_request_attempts=1)
    summary = harness.run(ctx)
    errors = _lines(Path(ctx.output_uri) / layout.ERRORS)
    assert errors and summary.counts.results + len(errors) == 20
    assert {e["error"]["status"] for e in errors} == {"INVALID_OUTPUT"}
    assert all("is not of type 'object'" in e["error"]["message"] for e in errors)


def test_without_a_schema_malformed_text_is_a_result(harness) -> None:
    harness.emulator.set_faults(_malformed("not_json", 1.0))
    ctx = harness.start(5)
    summary = harness.run(ctx)
    assert summary.counts.results == 5 and summary.counts.errors == 0


def test_a_schema_uri_is_read_only_where_inputs_may_be(harness) -> None:
    import pytest

    from shared.errors import AccessError

    source = harness.tmp / "in.jsonl"
    source.write_text(json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}) + "\n")
    spec = RunSpec(input_uri=str(source), output_uri=str(harness.tmp / "out-protected"),
                   output_schema=OutputSchema(uri="/etc/hostname"))
    with pytest.raises(AccessError, match=r"^output_schema.uri /etc/hostname: a protected"):
        register_run(harness.settings, spec)
