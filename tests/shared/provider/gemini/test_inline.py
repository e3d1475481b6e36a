"""Gemini's inline mode: parts under the size limit go in the create call, results come back
as ``inlinedResponses`` (also accepted from file-mode jobs, as the live API answers small
ones), read with their keys in ``metadata``."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pytest
import yaml

from shared.errors import NotFoundError
from shared.jsonl import classify_output
from shared.jsonl.records import staged_line
from shared.provider.gemini import BatchJob, GeminiClient, GeminiProvider, job_of
from shared.provider.gemini.provider import INLINE_HARD_LIMIT
from shared.run.states import BatchState
from tests.fixtures.emulator import EmulatorHandle

RECORDED = Path("/work/shared/reference/recorded/ruby_llm__batch_with_gemini__6cffaeae.yml")
PART = b"".join(
    staged_line(n, orjson.dumps({"contents": [{"parts": [{"text": f"q {n}"}]}]}))
    for n in range(1, 11)
)


def _source(data: bytes):  # type: ignore[no-untyped-def]
    @contextmanager
    def open_at(offset: int) -> Iterator[BinaryIO]:
        yield io.BytesIO(data[offset:])

    return open_at


def test_a_small_part_goes_inline_and_comes_back_keyed(
    emulator: EmulatorHandle, make_client: Callable[..., GeminiClient]
) -> None:
    provider = GeminiProvider(make_client(), inline_max_bytes=len(PART))
    session = provider.start_upload(len(PART), display_name="shardline-r-s00001-a01-p01")
    name = provider.send_upload(session, _source(PART), len(PART), chunk_size=1 << 20,
                                start_offset=0)
    assert name == "inline:shardline-r-s00001-a01-p01"
    assert not any(k.startswith("files.") for k in emulator.stats()["requests"])
    job = provider.create_job(model="gemini-2.5-flash", kind="generate",
                              display_name="shardline-r-s00001-a01-p01", file_name=name,
                              source=_source(PART))
    assert [j.name for j in provider.find_jobs("shardline-r-s00001-a01-p01")] == [job.name]
    emulator.wait_job(job.name)
    done = provider.get_job(job.name)
    assert done.state is BatchState.SUCCEEDED and done.output == f"inline:{job.name}"
    with provider.open_output(done) as chunks:
        output = b"".join(chunks)
    stats = classify_output(io.BytesIO(output), io.BytesIO(PART), io.BytesIO(), io.BytesIO())
    assert (stats.responses, stats.errors, stats.strays) == (10, 0, 0)
    assert stats.tokens.prompt > 0
    with pytest.raises(NotFoundError):
        provider.delete_file(name)


def test_the_choice_by_size_and_by_the_run() -> None:
    auto = GeminiProvider(None, inline_max_bytes=1000)  # type: ignore[arg-type]
    assert auto.goes_inline(1000) and not auto.goes_inline(1001)
    never = GeminiProvider(None, inline_max_bytes=1000, inline=False)  # type: ignore[arg-type]
    assert not never.goes_inline(10)
    always = GeminiProvider(None, inline=True)  # type: ignore[arg-type]
    assert always.goes_inline(5_000_000) and not always.goes_inline(INLINE_HARD_LIMIT + 1)
    assert not GeminiProvider(None).goes_inline(10)  # type: ignore[arg-type]


def _recorded_operations() -> list[dict[str, Any]]:
    """The recorded answers (read from the reference, never copied into the tests)."""
    if not RECORDED.exists():
        pytest.skip("the reference's recorded answers are not on this machine")
    tape = yaml.safe_load(RECORDED.read_text())
    bodies = [i["response"]["body"]["string"] for i in tape["http_interactions"]]
    return [orjson.loads(b) for b in bodies if "inlinedResponses" in b]


def test_inlined_responses_of_a_recorded_job_are_read() -> None:
    operations = _recorded_operations()
    assert operations
    job = job_of(BatchJob.model_validate(operations[-1]))
    assert job.state is BatchState.SUCCEEDED and job.output == f"inline:{job.name}"
    answers = BatchJob.model_validate(operations[-1]).inlined_responses
    assert answers and all("response" in a and "metadata" in a for a in answers)


def test_a_file_job_answered_inline_is_read_too() -> None:
    operation = {
        "name": "batches/x", "done": True,
        "metadata": {"state": "BATCH_STATE_SUCCEEDED", "inputConfig": {"fileName": "files/f"}},
        "response": {"inlinedResponses": {"inlinedResponses": [
            {"response": {"candidates": []}, "metadata": {"key": "3"}}]}},
    }
    job = job_of(BatchJob.model_validate(operation))
    assert job.output == "inline:batches/x" and not job.is_live
