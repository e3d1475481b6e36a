"""The ``shardline`` commands about money: ``estimate`` (and ``--dry-run``), ``cache``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta

import orjson
from rich.console import Console
from rich.table import Table

from shared.cache import RequestCache
from shared.pipeline.estimate import Estimate, estimate_run
from shared.run.records import CostEstimate
from shared.run.spec import RunSpec
from shared.settings import Settings
from shared.storage import open_storage

EXIT_OK = 0


def show_estimate(settings: Settings, spec: RunSpec, *, as_json: bool) -> int:
    """Print what ``spec`` would send and cost; nothing is uploaded or registered."""
    estimate = estimate_run(settings, spec)
    if as_json:
        print(estimate.model_dump_json(indent=2))
    else:
        Console().print(estimate_table(estimate))
    return EXIT_OK


def _money(cost: CostEstimate) -> str:
    return f"${cost.total:,.4f}" if cost.total is not None else cost.basis


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def estimate_table(estimate: Estimate) -> Table:
    table = Table(title=f"estimate: {estimate.input_uri} on {estimate.model}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("input lines", f"{estimate.lines:,} ({estimate.rejected:,} rejected)")
    table.add_row("from the cache", f"{estimate.cached:,}")
    if estimate.max_cost is not None:
        table.add_row("held by max_cost", f"{estimate.held:,} (budget ${estimate.max_cost:g})")
    table.add_row("to send", f"{estimate.to_send:,}")
    table.add_row("tokens (est.)", f"{estimate.estimated_input_tokens:,} in, "
                  f"{estimate.estimated_output_tokens:,} out (assumed)")
    table.add_row("cost, batch price", _money(estimate.cost))
    table.add_row("same, interactive", _money(estimate.interactive_cost))
    table.add_row("shards / jobs", f"{estimate.shards} / {estimate.jobs}")
    table.add_row("time at best", f"{_duration(estimate.best_seconds)} ({estimate.waves} "
                  f"wave(s), limited by {estimate.limited_by})")
    table.add_row("provider's target", _duration(estimate.provider_target_seconds))
    return table


def cmd_cache(args: argparse.Namespace, settings: Settings) -> int:
    cache = RequestCache(open_storage(settings.cache_location()))
    if args.action == "stats":
        stats = cache.stats()
        if args.json:
            print(stats.model_dump_json(indent=2))
        else:
            print(f"{stats.entries:,} responses in {stats.segments:,} segments, "
                  f"{stats.bytes:,} bytes; oldest {stats.oldest}, newest {stats.newest}")
        return EXIT_OK
    max_age = args.max_age_days if args.max_age_days is not None else settings.cache_max_age_days
    max_bytes = args.max_bytes if args.max_bytes is not None else settings.cache_max_bytes
    report = cache.prune(max_age=timedelta(days=max_age), max_bytes=max_bytes)
    compacted = cache.compact()
    if args.json:
        print(orjson.dumps({**report.model_dump(), **compacted.model_dump()},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"deleted {report.deleted_segments:,} segments ({report.deleted_bytes:,} bytes); "
              f"kept {report.kept_segments:,} ({report.kept_bytes:,} bytes); merged "
              f"{compacted.merged_segments:,} segments into {compacted.merged_groups:,}")
    return EXIT_OK


def add_cache_arguments(parser: argparse.ArgumentParser, size: Callable[[str], int]) -> None:
    parser.add_argument("action", choices=["stats", "prune"],
                        help="prune: evict by age, then by size, then merge each bucket's "
                        "segments of a day into one (fewer objects for lookups to read)")
    parser.add_argument("--max-age-days", type=float,
                        help="prune: older than this (default SHARDLINE_CACHE_MAX_AGE_DAYS, 30)")
    parser.add_argument("--max-bytes", type=size,
                        help="prune: then the oldest until at most this (e.g. 50GB)")
    parser.add_argument("--json", action="store_true")
