"""Streaming JSONL core: validate and split the input (plan), sort, classify provider output
(collect) and the keyed merge. Everything streams; memory does not grow with the input.

Modules: ``lines`` (physical lines), ``validate`` (one line), ``rejections`` (rejected
records), ``dedupe`` (duplicate keys), ``cut`` (shard cut rule), ``plan`` (the pass),
``sort`` (external sort), ``collect`` (provider output), ``merge`` (finish a shard),
``records`` (byte formats of our own files).
"""

from shared.jsonl.collect import (
    MISSING_ERROR,
    CollectStats,
    OutOfOrder,
    collect_output,
    fail_all,
    is_retryable,
    normalize_error,
    retryable_lines,
    select_lines,
    stage_parts,
)
from shared.jsonl.cut import StagedFile, must_cut
from shared.jsonl.dedupe import Duplicate, KeyLog
from shared.jsonl.lines import Line, LineReader
from shared.jsonl.merge import ShardTotals, concat, finish_shard
from shared.jsonl.plan import PlanResult, plan_input
from shared.jsonl.records import record_line_number, staged_line_number
from shared.jsonl.sort import LineSorter
from shared.jsonl.validate import Accepted, Kind, Rejected, check_line

__all__ = [
    "MISSING_ERROR",
    "Accepted",
    "CollectStats",
    "Duplicate",
    "KeyLog",
    "Kind",
    "Line",
    "LineReader",
    "LineSorter",
    "OutOfOrder",
    "PlanResult",
    "Rejected",
    "ShardTotals",
    "StagedFile",
    "check_line",
    "collect_output",
    "concat",
    "fail_all",
    "finish_shard",
    "is_retryable",
    "must_cut",
    "normalize_error",
    "plan_input",
    "record_line_number",
    "retryable_lines",
    "select_lines",
    "stage_parts",
    "staged_line_number",
]
