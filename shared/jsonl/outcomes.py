"""Classify a provider's output file against the part input it answers.

Every line of the part input ends in exactly one of the part's outcome files:

- ``results``: ``{"line":N,"response":{...}}``, the response kept verbatim;
- ``errors``: ``{"line":N,"error":{"code","message","status"},"retryable":bool}``.

The output's key is our decimal line number. An output line that cannot be parsed, has no
such key, or names a line not in this part is a *stray*: counted, never trusted. A line
without an object ``response`` is a failure of its key, whatever it holds instead (the
reference's §10.3: the error is read from ``error`` or ``status``; with neither it gets a
synthetic ``UNKNOWN`` error). Several lines for one key: a response beats an error and the
first response beats later ones, so no request counts as succeeding twice; the losers are
counted as duplicates. An input line the output does not mention becomes a retryable
``MISSING`` error. The provider's order is not trusted: outcomes are sorted by line with
the external sort, then merge-joined with the (line-ordered) part input; or, with
``in_order=True``, joined as they are read as long as lines never go back (the provider
documents that its output follows its input), which needs no sort, no temporary files and
no sort buffer (benchmarks/RESULTS.md, "Collect against the naive script").

Also here: :func:`fail_all` (a whole part failed). The inputs of a next attempt are staged by
:mod:`shared.jsonl.restage`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from typing import Any, BinaryIO

import orjson
from pydantic import BaseModel, Field

from shared.errors import RunError
from shared.jsonl.records import (
    error_record,
    is_retryable_record,
    outcome_order,
    response_json,
    result_record,
    staged_line_number,
)
from shared.jsonl.sort import DEFAULT_MEMORY_BYTES, LineSorter
from shared.run.records import TokenTotals

MISSING_ERROR: dict[str, Any] = {
    "code": None,
    "message": "the provider returned no output line for this request",
    "status": "MISSING",
}
#: 529: Anthropic's "overloaded".
RETRYABLE_HTTP_CODES = frozenset({429, 500, 502, 503, 504, 529})
#: gRPC codes: 4 DEADLINE_EXCEEDED, 8 RESOURCE_EXHAUSTED, 13 INTERNAL, 14 UNAVAILABLE.
RETRYABLE_GRPC_CODES = frozenset({4, 8, 13, 14})
#: ``INVALID_OUTPUT``: a response that failed the run's output schema (:mod:`shared.typed`).
RETRYABLE_STATUSES = frozenset(
    {
        "RESOURCE_EXHAUSTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "MISSING",
        "INVALID_OUTPUT",
    }
)
#: Status names for a bare code (HTTP per the provider's table, gRPC by number).
STATUS_OF_CODE: dict[int, str] = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_USAGE = (
    ("promptTokenCount", "prompt"),
    ("candidatesTokenCount", "candidates"),
    ("thoughtsTokenCount", "thoughts"),
    ("cachedContentTokenCount", "cached"),
    ("totalTokenCount", "total"),
)
_USAGE_FIELDS = tuple(enumerate(field for field, _ in _USAGE))
_ORDER = itemgetter(0)
#: ``validate(staged_request_line, response_json) -> error | None`` (see classify_output).
Validate = Callable[[bytes, bytes], "dict[str, Any] | None"]


class OutcomeStats(BaseModel):
    """What one output file held. ``lines == responses + errors``; ``missing`` and
    ``retryable`` are parts of ``errors``; ``output_lines`` counts non-blank output lines
    (``== responses + errors - missing + strays + duplicates``). ``invalid`` (part of
    ``errors``) counts responses the ``validate`` hook refused; their tokens stay in
    ``tokens`` (the provider bills them)."""

    lines: int = 0
    responses: int = 0
    errors: int = 0
    retryable: int = 0
    missing: int = 0
    strays: int = 0
    duplicates: int = 0
    invalid: int = 0
    output_lines: int = 0
    #: Sums of ``usageMetadata`` (or an OpenAI-style ``usage``) over kept responses.
    tokens: TokenTotals = Field(default_factory=TokenTotals)


def is_retryable(error: Mapping[str, Any]) -> bool:
    """Whether a request that failed with ``error`` may succeed if sent again: quota,
    overload, server and timeout failures, and lines the provider never answered."""
    code = error.get("code")
    if type(code) is int and (code in RETRYABLE_HTTP_CODES or code in RETRYABLE_GRPC_CODES):
        return True
    status = error.get("status")
    return isinstance(status, str) and status.upper() in RETRYABLE_STATUSES


def normalize_error(line: Mapping[str, Any]) -> dict[str, Any]:
    """``{"code","message","status"}`` from an output line without a usable response."""
    source = line.get("error")
    if source is None:
        source = line.get("status")
    code: Any = None
    message: Any = None
    status: Any = None
    if isinstance(source, dict):
        code, message, status = source.get("code"), source.get("message"), source.get("status")
    elif isinstance(source, str):
        status = source
    elif type(source) is int:
        code = source
    elif "response" in line:
        message = "the provider returned a response that is not an object"
    else:
        message = "the provider returned a line with neither a response nor an error"
    if isinstance(code, str) and code.isascii() and code.isdigit():
        code = int(code)
    if type(code) is not int:
        code = None
    if not isinstance(status, str) or not status:
        status = STATUS_OF_CODE.get(code, "UNKNOWN") if code is not None else "UNKNOWN"
    if message is None:
        message = ""
    elif not isinstance(message, str):
        message = orjson.dumps(message).decode()
    return {"code": code, "message": message, "status": status}


class OutOfOrder(Exception):  # noqa: N818 - a signal to the caller, not a failure
    """The output was read with ``in_order=True`` and a line came after a later one.

    Raised as soon as that is seen; what was written to ``results``/``errors`` is incomplete
    and must be discarded (a storage writer left by an exception leaves nothing behind), and
    the output collected again with ``in_order=False``.
    """

    def __init__(self, line: int, after: int) -> None:
        super().__init__(f"output line for input line {line} came after line {after}")
        self.line = line
        self.after = after


def classify_output(
    output: BinaryIO,
    part_input: BinaryIO,
    results: BinaryIO,
    errors: BinaryIO,
    *,
    retryable: Callable[[Mapping[str, Any]], bool] = is_retryable,
    validate: Validate | None = None,
    tmp_dir: str | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    in_order: bool = False,
) -> OutcomeStats:
    """Split ``output`` into ``results`` and ``errors``, one outcome per part-input line,
    both sorted by line. ``memory_bytes`` bounds the sort's buffer.

    Outcomes are taken in :func:`outcome_order` (line, then results before errors, each in
    arrival order), so the first record of a line is the one kept: its first response, or
    its first error when it has no response.

    ``in_order=True`` bets that the output follows the input's order (the provider documents
    that it does): outcomes are then joined with the part input as they are read, with no
    sort, no temporary files and no sort buffer. The first line that comes after a later one
    raises :class:`OutOfOrder` (see there). Both ways give the same bytes and counts.

    ``validate`` (only given when the run has an output schema, so the usual path pays
    nothing) sees each kept response with its staged request line; an error it returns
    replaces the result (``retryable`` decides its flag).
    """
    usage = [0] * len(_USAGE)
    counts = [0, 0]  # output lines, strays while reading
    arrivals = _outcomes(output, retryable, usage, counts)
    if in_order:
        return _join(
            _in_line_order(arrivals), part_input, results, errors, usage, counts,
            retryable, validate,
        )
    with LineSorter(outcome_order, memory_bytes=memory_bytes, tmp_dir=tmp_dir) as sorter:
        add = sorter.add_keyed
        for order, record in arrivals:
            add(order, record)
        return _join(
            sorter.sorted_keyed(), part_input, results, errors, usage, counts,
            retryable, validate,
        )


def _outcomes(
    output: BinaryIO,
    retryable: Callable[[Mapping[str, Any]], bool],
    usage: list[int],
    counts: list[int],
) -> Iterator[tuple[int, bytes]]:
    """``(outcome order, record)`` of every usable output line, in arrival order; counts
    output lines and strays into ``counts``, adds kept responses' usage into ``usage``."""
    output_lines = strays = 0
    try:
        for raw in output:
            if raw.isspace():
                continue
            output_lines += 1
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                line = _parse_leniently(raw)
            if type(line) is not dict:
                strays += 1
                continue
            key = line.get("key")
            if key is None:
                metadata = line.get("metadata")
                key = metadata.get("key") if type(metadata) is dict else None
            if type(key) is not str or not key.isdigit() or not key.isascii() or key[0] == "0":
                strays += 1
                continue
            number = int(key)
            response = line.get("response")
            if type(response) is dict:
                yield number * 2, result_record(number, orjson.dumps(response))
                metadata = response.get("usageMetadata")
                if type(metadata) is dict:
                    for index, field in _USAGE_FIELDS:
                        value = metadata.get(field)
                        if type(value) is int:
                            usage[index] += value
                elif "usage" in response:
                    _add_openai_usage(usage, response["usage"], 1)
            else:
                error = normalize_error(line)
                yield number * 2 + 1, error_record(number, error, retryable(error))
    finally:
        counts[0] += output_lines
        counts[1] += strays


def _in_line_order(arrivals: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """``arrivals`` as :func:`outcome_order` sorts them, given that lines never go back: one
    line's records are gathered and sorted (a response first), then passed on. Raises
    :class:`OutOfOrder` at the first line lower than one already seen."""
    group: list[tuple[int, bytes]] = []
    current = 0
    for outcome in arrivals:
        line = outcome[0] >> 1
        if line != current:
            if line < current:
                raise OutOfOrder(line, current)
            if len(group) > 1:
                group.sort(key=_ORDER)  # stable: arrival order within results, errors
            yield from group
            group = []
            current = line
        group.append(outcome)
    if len(group) > 1:
        group.sort(key=_ORDER)
    yield from group


def _join(
    outcomes: Iterator[tuple[int, bytes]],
    part_input: BinaryIO,
    results: BinaryIO,
    errors: BinaryIO,
    usage: list[int],
    counts: list[int],
    retryable: Callable[[Mapping[str, Any]], bool],
    validate: Validate | None,
) -> OutcomeStats:
    """Merge-join ``outcomes`` (in outcome order) with the line-ordered part input: one
    outcome per input line, ``MISSING`` where there is none; ``validate`` may refuse a kept
    response (see :func:`classify_output`)."""
    strays = duplicates = lines = responses = failures = retryables = missing = invalid = 0
    pending = next(outcomes, None)
    previous = 0
    for staged in part_input:
        number = staged_line_number(staged)
        if number <= previous:
            raise RunError(f"part input is not in line order at line {number}")
        previous = number
        lines += 1
        first = number * 2  # this line's result; ``first + 1``: its error
        while pending is not None and pending[0] < first:
            strays += 1
            _drop(usage, pending)
            pending = next(outcomes, None)
        if pending is None or pending[0] > first + 1:
            errors.write(error_record(number, MISSING_ERROR, True))
            failures += 1
            missing += 1
            retryables += 1
            continue
        order, kept = pending
        pending = next(outcomes, None)
        while pending is not None and pending[0] <= first + 1:
            duplicates += 1
            _drop(usage, pending)
            pending = next(outcomes, None)
        if order == first and validate is not None:
            refusal = validate(staged, response_json(kept))
            if refusal is not None:
                order, kept = first + 1, error_record(number, refusal, retryable(refusal))
                invalid += 1
        if order == first:
            results.write(kept)
            responses += 1
        else:
            errors.write(kept)
            failures += 1
            retryables += is_retryable_record(kept)
    while pending is not None:
        strays += 1
        _drop(usage, pending)
        pending = next(outcomes, None)
    return OutcomeStats(
        lines=lines,
        responses=responses,
        errors=failures,
        retryable=retryables,
        missing=missing,
        strays=strays + counts[1],
        duplicates=duplicates,
        invalid=invalid,
        output_lines=counts[0],
        tokens=TokenTotals(**dict(zip((name for _, name in _USAGE), usage, strict=True))),
    )


def fail_all(
    part_input: BinaryIO, errors: BinaryIO, error: Mapping[str, Any], retryable: bool
) -> int:
    """An error record for every line of ``part_input`` (the whole job failed, expired, was
    cancelled, or the work was cancelled before submission). Returns the count."""
    body = normalize_error({"error": dict(error)})
    count = 0
    for staged in part_input:
        errors.write(error_record(staged_line_number(staged), body, retryable))
        count += 1
    return count


def _parse_leniently(raw: bytes) -> Any:
    """The standard library's parse, for what orjson refuses but a provider might still send
    (NaN, infinities; they are written back as null): such a line is still an answer for its
    key, not a stray. None when the line is not JSON at all."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _drop(usage: list[int], outcome: tuple[int, bytes]) -> None:
    """Take a dropped response (duplicate, stray) back out of the token sums."""
    order, record = outcome
    if order % 2 == 0:
        response = orjson.loads(response_json(record))
        metadata = response.get("usageMetadata")
        if type(metadata) is dict:
            for index, field in _USAGE_FIELDS:
                value = metadata.get(field)
                if type(value) is int:
                    usage[index] -= value
        elif "usage" in response:
            _add_openai_usage(usage, response["usage"], -1)


def _add_openai_usage(usage: list[int], reported: Any, sign: int) -> None:
    """An OpenAI-style ``usage`` into the same sums: ``completion_tokens`` counts reasoning
    tokens too, so its ``reasoning_tokens`` go to ``thoughts`` and the rest to
    ``candidates`` (Gemini's split); cached prompt tokens are a part of ``prompt``.
    Anthropic's ``usage`` (``input_tokens`` without the cache reads and writes, which are
    added to ``prompt``; ``output_tokens``) is read here too."""
    if type(reported) is not dict:
        return
    if "input_tokens" in reported:
        _add_anthropic_usage(usage, reported, sign)
        return
    prompt, completion, total = (
        reported.get(name) for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    details = reported.get("completion_tokens_details")
    thoughts = details.get("reasoning_tokens") if type(details) is dict else None
    prompt_details = reported.get("prompt_tokens_details")
    cached = prompt_details.get("cached_tokens") if type(prompt_details) is dict else None
    thoughts = thoughts if type(thoughts) is int else 0
    if type(prompt) is int:
        usage[0] += sign * prompt
    if type(completion) is int:
        usage[1] += sign * (completion - thoughts)
    usage[2] += sign * thoughts
    if type(cached) is int:
        usage[3] += sign * cached
    if type(total) is int:
        usage[4] += sign * total


def _add_anthropic_usage(usage: list[int], reported: dict[str, Any], sign: int) -> None:
    parts = [reported.get(name) for name in (
        "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens"
    )]
    fresh, read, written, output = (value if type(value) is int else 0 for value in parts)
    usage[0] += sign * (fresh + read + written)
    usage[1] += sign * output
    usage[3] += sign * read
    usage[4] += sign * (fresh + read + written + output)
