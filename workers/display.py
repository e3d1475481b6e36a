"""How a run's progress and summary look in a terminal (rich) and in a log (plain lines)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shared.pipeline.progress import RunProgress
from shared.run.records import Summary


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(progress: RunProgress) -> str:
    jobs = " ".join(f"{state.lower()}={count}" for state, count in sorted(progress.jobs.items()))
    return (
        f"run {progress.run_id} {progress.state}: shards {progress.shards_final}/"
        f"{progress.shards}, requests {progress.requests_done}/{progress.requests_total}, "
        f"jobs [{jobs}], tokens {progress.tokens}, elapsed {_elapsed(progress.elapsed_seconds)}"
    )


def progress_panel(progress: RunProgress) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", progress.state + (" (cancel requested)" if progress.cancel_requested
                                             else ""))
    table.add_row("shards", f"{progress.shards_final} final of {progress.shards}")
    jobs = ", ".join(f"{s.lower()} {n}" for s, n in sorted(progress.jobs.items())) or "-"
    table.add_row("jobs", jobs)
    table.add_row(
        "requests", f"{progress.requests_done:,} done of {progress.requests_total:,}"
        f" (+{progress.rejected:,} rejected)"
    )
    table.add_row("tokens", f"{progress.tokens:,}")
    table.add_row("elapsed", _elapsed(progress.elapsed_seconds))
    total = max(progress.requests_total, 1)
    bar = ProgressBar(total=total, completed=min(progress.requests_done, total), width=50)
    return Panel(Group(table, bar), title=f"shardline run {progress.run_id}", expand=False)


def summary_table(summary: Summary, output_uri: str) -> Table:
    table = Table(title=f"run {summary.run_id}: {summary.state}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    counts = summary.counts
    table.add_row("output", output_uri)
    table.add_row("input lines", f"{counts.lines:,}")
    table.add_row("results", f"{counts.results:,}")
    table.add_row("errors", f"{counts.errors:,}")
    table.add_row("rejected", f"{counts.rejected:,}")
    table.add_row("accounted", "yes" if summary.accounted else "NO")
    table.add_row("tokens", f"{summary.tokens.total:,} (prompt {summary.tokens.prompt:,}, "
                  f"output {summary.tokens.candidates + summary.tokens.thoughts:,})")
    cost = summary.cost
    table.add_row("cost (est.)", f"${cost.total:.4f}" if cost.total is not None else cost.basis)
    table.add_row("shards / jobs", f"{summary.shards} / {len(summary.jobs)}")
    table.add_row("wall time", _elapsed(summary.timings.get("total", 0.0)))
    if summary.error:
        table.add_row("error", Text(summary.error, style="red"))
    return table


def follow(
    read: Callable[[], RunProgress],
    *,
    console: Console,
    interval: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> RunProgress:
    """Show progress until the run has a summary (or ``stop()``); returns the last reading."""
    progress = read()
    if console.is_terminal:
        with Live(progress_panel(progress), console=console, refresh_per_second=4) as live:
            while not progress.finished and not stop():
                time.sleep(interval)
                progress = read()
                live.update(progress_panel(progress))
        return progress
    last = ""
    next_print = 0.0
    while True:
        line = progress_line(progress)
        if (line != last and time.monotonic() >= next_print) or progress.finished:
            print(line, file=sys.stderr, flush=True)
            last, next_print = line, time.monotonic() + 10
        if progress.finished or stop():
            return progress
        time.sleep(interval)
        progress = read()
