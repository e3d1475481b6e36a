"""Streaming JSONL core: everything that reads or writes lines, in flat memory.

Modules: ``lines`` (physical lines), ``validate`` (one input line), ``rejections`` (rejected
records), ``dedupe`` (duplicate keys), ``cut`` (where staged files are cut), ``split`` (the
one pass over the input that stages the shards), ``sort`` (external sort), ``outcomes``
(classify a provider's output into results and errors), ``restage`` (the inputs of a next
attempt), ``join`` (a shard's outcomes joined with the user's metadata, and the run's
concatenation), ``records`` (byte formats of our own files).
"""

from shared.jsonl.cut import StagedFile, must_cut
from shared.jsonl.dedupe import Duplicate, KeyLog
from shared.jsonl.join import ShardTotals, concat, join_shard
from shared.jsonl.lines import Line, LineReader
from shared.jsonl.outcomes import (
    MISSING_ERROR,
    OutcomeStats,
    OutOfOrder,
    classify_output,
    fail_all,
    is_retryable,
    normalize_error,
)
from shared.jsonl.records import record_line_number, staged_line_number
from shared.jsonl.restage import retryable_lines, select_lines, stage_parts
from shared.jsonl.sort import LineSorter
from shared.jsonl.split import SplitResult, split_input
from shared.jsonl.validate import Accepted, Rejected, check_line
from shared.run.spec import Kind

__all__ = [
    "MISSING_ERROR",
    "Accepted",
    "Duplicate",
    "KeyLog",
    "Kind",
    "Line",
    "LineReader",
    "LineSorter",
    "OutOfOrder",
    "OutcomeStats",
    "Rejected",
    "ShardTotals",
    "SplitResult",
    "StagedFile",
    "check_line",
    "classify_output",
    "concat",
    "fail_all",
    "is_retryable",
    "join_shard",
    "must_cut",
    "normalize_error",
    "record_line_number",
    "retryable_lines",
    "select_lines",
    "split_input",
    "stage_parts",
    "staged_line_number",
]
