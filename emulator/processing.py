"""The work of one batch job, run in a worker thread: input in, output lines out, streamed.

A file job reads its input line by line and writes each answer through :class:`OutputWriter`
(scrambled order unless ``keep_order``), so a 2 GB input passes in flat memory. An inline job
(at most 20 MB by the create limit) is read whole. Bad lines become per-request error lines,
never a crash; an unexpected failure ends the job FAILED with an INTERNAL error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from emulator import anthropic_model, model, openai_model
from emulator.errors import default_message
from emulator.faults import MalformedOutput, RequestErrors, seeded_fraction
from emulator.records import FileRecord, JobRecord
from emulator.scramble import OutputWriter
from emulator.store import Store, write_atomic
from emulator.wire import field

INLINE_INPUT = "inline-input.json"
INLINE_OUTPUT = "inline-output.json"


class JobCancelledError(Exception):
    """The job was cancelled or deleted while its work ran."""


def _emptied(value: Any) -> Any:
    """go-genai#513: every array in the echoed fields comes back empty."""
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {k: _emptied(v) for k, v in value.items()}
    return value


class JobWork:
    """Answers every request of one job; ``cancel`` stops it between lines."""

    def __init__(
        self,
        job: JobRecord,
        store: Store,
        *,
        seed: int,
        keep_order: bool,
        buckets: int,
        embedding_dimensions: int,
        now: Callable[[], float],
        file_ttl_seconds: float,
    ) -> None:
        self.job = job
        self.store = store
        self.seed = seed
        self.keep_order = keep_order
        self.buckets = buckets
        self.dimensions = embedding_dimensions
        self.now = now
        self.file_ttl_seconds = file_ttl_seconds
        self.cancel = threading.Event()

    # ---- one request -----------------------------------------------------------------
    def _answer(self, request: Any, index: int, key: Any) -> tuple[str, dict[str, Any]]:
        """``("response", body)`` or ``("error", status)`` for one request."""
        faults: RequestErrors | None = self.job.effects.request_errors
        if faults is not None and faults.rate > 0:
            who = self.job.display_name or self.job.id
            if seeded_fraction(self.seed, who, key if key is not None else index) < faults.rate:
                status = faults.resolved_status()
                return "error", {
                    "code": faults.code,
                    "message": faults.message or default_message(status),
                    "status": status,
                }
        if not isinstance(request, dict):
            return "error", _invalid("The request is not a JSON object.")
        try:
            if self.job.kind == "embed":
                return "response", model.embed(request, self.dimensions)
            answer = model.generate(request, self.job.model, f"{self.job.id}:{index}")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return "error", _invalid(f"Invalid request: {exc}")
        malformed = self.job.effects.malformed_output
        if malformed is not None and malformed.rate > 0:
            who = self.job.display_name or self.job.id
            coin = seeded_fraction(self.seed, "malformed", who, key if key is not None else index)
            if coin < malformed.rate:
                _malform(answer, malformed)
        return "response", answer

    def _count(self, outcome: str) -> None:
        self.job.processed += 1
        if outcome == "error":
            self.job.failed += 1

    # ---- file jobs -------------------------------------------------------------------
    def _file_line(self, raw: bytes, index: int) -> bytes:
        spelling = "error"
        if self.job.effects.request_errors is not None:
            spelling = self.job.effects.request_errors.spelling
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._count("error")
            return orjson.dumps({spelling: _invalid(f"Line {index + 1} is not valid JSON.")})
        extras: dict[str, Any] = {}
        key: Any = None
        if isinstance(obj, dict) and "request" in obj:
            extras = {k: v for k, v in obj.items() if k != "request"}
            key = obj.get("key")
            request = obj["request"]
        elif isinstance(obj, dict) and ("contents" in obj or "content" in obj):
            request = obj
        else:
            self._count("error")
            if isinstance(obj, dict):
                extras = {k: v for k, v in obj.items()}
            body = _invalid(f"Line {index + 1} has no request.")
            return orjson.dumps({**self._echo(extras), spelling: body})
        outcome, body = self._answer(request, index, key)
        self._count(outcome)
        name = "response" if outcome == "response" else spelling
        return orjson.dumps({**self._echo(extras), name: body})

    def _echo(self, extras: dict[str, Any]) -> dict[str, Any]:
        if not self.job.effects.echo_arrays_emptied:
            return extras
        return {k: (v if k == "key" else _emptied(v)) for k, v in extras.items()}

    def _run_file(self) -> None:
        assert self.job.input_file is not None
        source = self.store.blob(self.job.input_file)
        output_id = f"batch-{self.job.id}"
        target = self.store.blob(output_id)
        writer = OutputWriter(
            target,
            self.store.work_dir(self.job.id) / "buckets",
            keep_order=self.keep_order,
            buckets=self.buckets,
            seed=self.seed,
        )
        try:
            with source.open("rb") as lines:
                index = 0
                for raw in lines:
                    if self.cancel.is_set():
                        raise JobCancelledError
                    if not raw.strip():
                        continue
                    writer.write(index, self._file_line(raw, index))
                    index += 1
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        if self.cancel.is_set() or self.store.jobs.get(self.job.id) is not self.job:
            target.unlink(missing_ok=True)  # cancelled, deleted or reset meanwhile: no output
            raise JobCancelledError
        self.job.request_count = index
        now = self.now()
        self.store.save_file(
            FileRecord(
                id=output_id,
                owner=self.job.owner,
                mime_type="application/jsonl",
                size_bytes=writer.size,
                sha256_hex=writer.sha256.hexdigest(),
                create_time=now,
                update_time=now,
                expiration_time=now + self.file_ttl_seconds,
                source="GENERATED",
                line_count=writer.lines,
            )
        )
        self.job.output_file = output_id
        if self.cancel.is_set():  # ended (cancelled, expired) while the file was saved
            self.store.delete_file(output_id)
            self.job.output_file = None
            raise JobCancelledError

    # ---- OpenAI-style file jobs --------------------------------------------------------
    def _openai_answer(self, raw: bytes, index: int) -> tuple[bool, bytes]:
        """``(failed, line)``: the output or error file line for one input line."""
        request_id = f"req_{self.job.id[:12]}_{index}"
        line_id = f"batch_req_{self.job.id[:12]}_{index}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        custom_id = obj.get("custom_id") if isinstance(obj, dict) else None
        body = obj.get("body") if isinstance(obj, dict) else None
        problem = None
        if not isinstance(obj, dict):
            problem = ("invalid_json_line", f"Line {index + 1} is not a valid JSON object.")
        elif not isinstance(custom_id, str):
            problem = ("missing_custom_id", f"Line {index + 1} has no custom_id.")
        elif obj.get("url") != self.job.endpoint:
            problem = ("invalid_url", f"Line {index + 1}: url must be {self.job.endpoint}.")
        elif not isinstance(body, dict):
            problem = ("missing_body", f"Line {index + 1} has no body object.")
        if problem is not None:
            error = {"code": problem[0], "message": problem[1]}
            line = {"id": line_id, "custom_id": custom_id, "response": None, "error": error}
            return True, orjson.dumps(line)
        assert isinstance(body, dict) and isinstance(custom_id, str)
        faults: RequestErrors | None = self.job.effects.request_errors
        status_code, answer = 200, None
        if faults is not None and faults.rate > 0:
            who = self.job.display_name or self.job.id
            if seeded_fraction(self.seed, who, custom_id) < faults.rate:
                status = faults.resolved_status()
                status_code = faults.code
                answer = {
                    "error": {
                        "message": faults.message or default_message(status),
                        "type": "server_error" if faults.code >= 500 else "invalid_request_error",
                        "param": None,
                        "code": status.lower(),
                    }
                }
        if answer is None:
            try:
                if self.job.kind == "embed":
                    answer = openai_model.embeddings(body)
                else:
                    answer = openai_model.chat_completion(body, f"{self.job.id}:{index}")
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                status_code = 400
                answer = {
                    "error": {
                        "message": f"Invalid request: {exc}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
        response = {"status_code": status_code, "request_id": request_id, "body": answer}
        line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        return status_code != 200, orjson.dumps(line)

    def _run_openai_file(self) -> None:
        assert self.job.input_file is not None
        source = self.store.blob(self.job.input_file)
        work = self.store.work_dir(self.job.id)
        ids = {"output": f"file-out{self.job.id[:20]}", "error": f"file-err{self.job.id[:20]}"}
        writers = {
            which: OutputWriter(
                self.store.blob(file_id),
                work / f"buckets-{which}",
                keep_order=self.keep_order,
                buckets=self.buckets,
                seed=self.seed,
            )
            for which, file_id in ids.items()
        }
        try:
            with source.open("rb") as lines:
                index = 0
                for raw in lines:
                    if self.cancel.is_set():
                        raise JobCancelledError
                    if not raw.strip():
                        continue
                    failed, line = self._openai_answer(raw, index)
                    self._count("error" if failed else "response")
                    writers["error" if failed else "output"].write(index, line)
                    index += 1
            for writer in writers.values():
                writer.finish()
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        if self.cancel.is_set() or self.store.jobs.get(self.job.id) is not self.job:
            for file_id in ids.values():
                self.store.blob(file_id).unlink(missing_ok=True)
            raise JobCancelledError
        self.job.request_count = index
        now = self.now()
        for which, file_id in ids.items():
            writer = writers[which]
            if not writer.lines:  # the API leaves out a file with no lines
                self.store.blob(file_id).unlink(missing_ok=True)
                continue
            self.store.save_file(
                FileRecord(
                    id=file_id,
                    owner=self.job.owner,
                    display_name="batch_output.jsonl" if which == "output" else "batch_error.jsonl",
                    mime_type="application/jsonl",
                    size_bytes=writer.size,
                    sha256_hex=writer.sha256.hexdigest(),
                    create_time=now,
                    update_time=now,
                    expiration_time=now + self.file_ttl_seconds,
                    source="GENERATED",
                    line_count=writer.lines,
                    purpose="batch_output",
                )
            )
            if which == "output":
                self.job.output_file = file_id
            else:
                self.job.error_file = file_id

    # ---- Anthropic message batches -------------------------------------------------------
    def _anthropic_answer(self, raw: bytes, index: int) -> tuple[bool, bytes]:
        """``(failed, line)``: the results line for one request of the batch."""
        item = orjson.loads(raw)
        custom_id = item.get("custom_id")
        params = item.get("params")
        faults: RequestErrors | None = self.job.effects.request_errors
        error: dict[str, Any] | None = None
        if faults is not None and faults.rate > 0:
            who = self.job.display_name or self.job.id
            if seeded_fraction(self.seed, who, custom_id) < faults.rate:
                error = {
                    "type": anthropic_error_type(faults.code),
                    "message": faults.message or default_message(faults.resolved_status()),
                }
        if error is None:
            try:
                if not isinstance(params, dict):
                    raise ValueError("params: an object is required")
                answer = anthropic_model.message(params, f"{self.job.id}:{index}")
                result: dict[str, Any] = {"type": "succeeded", "message": answer}
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                error = {"type": "invalid_request_error", "message": str(exc)}
        if error is not None:
            result = {"type": "errored", "error": {"type": "error", "error": error}}
        return error is not None, orjson.dumps({"custom_id": custom_id, "result": result})

    def _run_anthropic(self) -> None:
        assert self.job.input_file is not None
        output_id = f"anthropic-results-{self.job.id}"
        target = self.store.blob(output_id)
        writer = OutputWriter(
            target,
            self.store.work_dir(self.job.id) / "buckets",
            keep_order=self.keep_order,
            buckets=self.buckets,
            seed=self.seed,
        )
        try:
            with self.store.blob(self.job.input_file).open("rb") as lines:
                for index, raw in enumerate(lines):
                    if self.cancel.is_set():
                        raise JobCancelledError
                    failed, line = self._anthropic_answer(raw, index)
                    self._count("error" if failed else "response")
                    writer.write(index, line)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        if self.cancel.is_set() or self.store.jobs.get(self.job.id) is not self.job:
            target.unlink(missing_ok=True)
            raise JobCancelledError
        self.job.output_file = output_id

    # ---- inline jobs -----------------------------------------------------------------
    def _run_inline(self) -> None:
        work = self.store.work_dir(self.job.id)
        items = orjson.loads((work / INLINE_INPUT).read_bytes())
        answers: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if self.cancel.is_set():
                raise JobCancelledError
            request = field(item, "request") if isinstance(item, dict) else None
            if request is None:
                request = item
            metadata = field(item, "metadata") if isinstance(item, dict) else None
            key = field(metadata, "key") if isinstance(metadata, dict) else None
            outcome, body = self._answer(request, index, key)
            self._count(outcome)
            answer: dict[str, Any] = {outcome: body}
            if metadata is not None:
                answer["metadata"] = metadata
            answers.append(answer)
        write_atomic(work / INLINE_OUTPUT, orjson.dumps(answers))

    def run(self) -> None:
        """Do the work; mark the job done (or FAILED on an unexpected error) at the end."""
        self.job.processed = 0
        self.job.failed = 0
        try:
            if self.job.api == "openai":
                self._run_openai_file()
            elif self.job.api == "anthropic":
                self._run_anthropic()
            elif self.job.inline:
                self._run_inline()
            else:
                self._run_file()
        except JobCancelledError:
            return
        except (OSError, ValueError) as exc:
            self.job.error = {"code": 13, "message": f"Batch processing failed: {exc}"}
        self.job.work_done_at = self.now()
        self.job.work_done = True
        self.store.save_job(self.job)


def _malform(answer: dict[str, Any], fault: MalformedOutput) -> None:
    """Spoil the text of a generate answer in place (see :class:`MalformedOutput`)."""
    part = answer["candidates"][0]["content"]["parts"][0]
    text: str = part["text"]
    if fault.shape == "wrong_shape":
        part["text"] = orjson.dumps(text).decode()
    else:
        part["text"] = text[: max(1, len(text) // 2)]
def anthropic_error_type(code: int) -> str:
    """The Messages API error type an HTTP status stands for."""
    return {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
            529: "overloaded_error", 503: "overloaded_error"}.get(code, "api_error")


def _invalid(message: str) -> dict[str, Any]:
    return {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}


def read_inline_output(store: Store, job_id: str) -> list[Any]:
    """The inline answers of a finished inline job (at most the 20 MB the input allowed)."""
    path: Path = store.work_dir(job_id) / INLINE_OUTPUT
    if not path.exists():
        return []
    result: list[Any] = orjson.loads(path.read_bytes())
    return result
