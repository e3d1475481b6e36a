"""The ``shardline`` command: run, submit, status, watch, cancel, resume, list, sweep, demo, ...

Exit codes: 0 done (every request accounted for) or submitted; 1 the run ended ``failed``
(nothing succeeded: no usable line, every request an error, a poison message; the reason on
stderr) or without accounting for every line; 2 bad usage, input or configuration (message
on stderr); 3 interrupted (the run can be resumed); 4 provider or storage failure.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import orjson
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from rich.console import Console

from shared.apikeys import ApiKeyPool
from shared.errors import (
    ConfigError,
    InputError,
    ProviderError,
    RunError,
    ShardlineError,
    SpecError,
    StorageError,
)
from shared.metrics.server import serve_metrics
from shared.pipeline.cancel import cancel_run
from shared.pipeline.context import run_context
from shared.pipeline.progress import RunProgress, read_progress
from shared.pipeline.start import RegisteredRun, lookup_run, register_run, registry
from shared.pipeline.sweep import sweep_orphans
from shared.run.spec import DEFAULT_CLIENT, OutputSchema, RunOptions, RunSpec, run_spec_schema
from shared.run.store import RunStore
from shared.settings import ProviderName, Settings, load_settings, require_api_key
from shared.storage import open_storage
from shared.validation import problems
from workers.app import configure
from workers.cli_cost import add_cache_arguments, cmd_cache, show_estimate
from workers.demo import DEMO_KEY, emulator_process, write_sample
from workers.display import follow, progress_line, summary_table
from workers.embedded import embedded_worker
from workers.launch import launch_run, send_plan

EXIT_OK, EXIT_UNACCOUNTED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_FAILURE = 0, 1, 2, 3, 4

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """``2000000``, ``200MB``, ``1.5GiB`` → bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 200MB, 1GiB)")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(float(match.group(1)) * _UNITS[unit])


def _uri(text: str) -> str:
    """Local paths become absolute, so workers elsewhere in the run see the same place."""
    if "://" in text:
        return text
    return str(Path(text).expanduser().resolve())


def _label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a label is NAME=VALUE, not {text!r}")
    return name, value


# ---- building a run -------------------------------------------------------------------


def _switch(field: str) -> str:
    """The command-line switch behind a RunSpec field, for messages."""
    head, _, rest = field.removeprefix("options.").partition(".")
    switch = {"input_uri": "INPUT", "output_uri": "--out", "labels": "--label"}.get(
        head, "--" + head.replace("_", "-")
    )
    return f"{switch} {rest}" if rest else switch


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The RunSpec of ``run``/``submit``; a bad option is one line naming the switch."""
    try:
        return RunSpec(
            input_uri=_uri(args.input),
            output_uri=_uri(args.out),
            model=args.model,
            kind=args.kind,
            provider=args.provider,
            client=args.client,
            idempotency_key=args.idempotency_key,
            options=RunOptions(
                shard_max_bytes=args.shard_max_bytes,
                shard_max_requests=args.shard_max_requests,
                inline=args.inline,
            ),
            labels=dict(args.label or []),
            cache=not args.no_cache,
            max_cost=args.max_cost,
            output_schema=_output_schema(args),
        )
    except ValidationError as exc:
        raise SpecError(f"invalid options: {problems(exc, name=_switch)}") from None


def _output_schema(args: argparse.Namespace) -> OutputSchema | None:
    if args.schema_from_request:
        return OutputSchema(from_request=True)
    if args.output_schema:
        return OutputSchema(uri=_uri(args.output_schema))
    return None


def _console() -> Console:
    return Console(stderr=True)


def _store(output_uri: str) -> RunStore:
    return RunStore(open_storage(output_uri))


def _finish(progress: RunProgress, output_uri: str, *, as_json: bool) -> int:
    summary = progress.summary
    if summary is None:
        print(progress_line(progress), file=sys.stderr)
        return EXIT_INTERRUPTED
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        Console().print(summary_table(summary, output_uri))
    if summary.state == "failed":
        print(f"shardline: run {summary.run_id} failed"
              + (f": {summary.error}" if summary.error else ""), file=sys.stderr)
        return EXIT_UNACCOUNTED
    return EXIT_OK if summary.accounted else EXIT_UNACCOUNTED


def drive(settings: Settings, started: RegisteredRun, *, resume: bool, as_json: bool) -> int:
    """Make the run progress and show it until it is done.

    Embedded: this process is the worker; a run found unfinished (created by an earlier
    process whose in-memory queue died with it) is resumed from its records. With a broker:
    only enqueue, and watch the records while workers anywhere do the work.
    """
    app = configure(settings)
    store = _store(started.output_uri)

    def read() -> RunProgress:
        return read_progress(store)

    if store.summary() is not None:
        return _finish(read(), started.output_uri, as_json=as_json)
    console = _console()
    if settings.embedded:
        with embedded_worker(app, concurrency=settings.embedded_concurrency):
            # Always: this process's in-memory queue is new, whatever ran the run before.
            send_plan(started.run_id, started.output_uri)
            try:
                progress = follow(read, console=console)
            except KeyboardInterrupt:
                console.print(
                    f"interrupted; continue with: shardline resume {started.run_id}"
                )
                return EXIT_INTERRUPTED
        return _finish(progress, started.output_uri, as_json=as_json)
    if resume:
        send_plan(started.run_id, started.output_uri)
    else:
        launch_run(started)
    try:
        progress = follow(read, console=console)
    except KeyboardInterrupt:
        console.print(f"stopped watching; the run goes on: shardline watch {started.run_id}")
        return EXIT_INTERRUPTED
    return _finish(progress, started.output_uri, as_json=as_json)


# ---- commands -------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    spec = spec_from_args(args)
    if args.dry_run:
        return show_estimate(settings, spec, as_json=args.json)
    if settings.embedded:  # this process is the worker; with a broker, the workers' keys
        require_api_key(settings, spec.provider or settings.provider)
    started = register_run(settings, spec)
    _console().print(f"run {started.run_id} → {started.output_uri}")
    metrics = serve_metrics(settings, args.metrics_port)
    if metrics is not None:
        _console().print(f"metrics on http://{settings.metrics_host}:{metrics.server_port}/metrics")
    try:
        return drive(settings, started, resume=False, as_json=args.json)
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    if args.dry_run:
        return show_estimate(settings, spec_from_args(args), as_json=args.json)
    if settings.embedded:
        print(
            "shardline submit needs a broker (SHARDLINE_BROKER_URL=redis://... or amqp://...): "
            "with the embedded default nothing would run after this command exits; "
            "use shardline run instead",
            file=sys.stderr,
        )
        return EXIT_USAGE
    configure(settings)
    started = register_run(settings, spec_from_args(args))
    try:
        launch_run(started)
    except OperationalError as exc:
        # The run is claimed (its output holds it) but its plan was not sent: say how to send
        # it, rather than leave an output that a plain retry would be refused.
        print(
            f"shardline: cannot reach the broker: {exc}; run {started.run_id} is registered, "
            f"send it with: shardline resume {started.run_id} --detach",
            file=sys.stderr,
        )
        print(started.model_dump_json() if args.json else started.run_id)
        return EXIT_FAILURE
    if args.json:
        print(started.model_dump_json())
    else:
        print(started.run_id)
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace, settings: Settings) -> int:
    return show_estimate(settings, spec_from_args(args), as_json=args.json)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    entry = lookup_run(settings, args.run)
    progress = read_progress(_store(entry.output_uri))
    if args.json:
        print(progress.model_dump_json(indent=2))
    elif progress.summary is not None:
        Console().print(summary_table(progress.summary, entry.output_uri))
    else:
        print(progress_line(progress))
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    entry = lookup_run(settings, args.run)
    store = _store(entry.output_uri)
    progress = follow(lambda: read_progress(store), console=_console())
    return _finish(progress, entry.output_uri, as_json=args.json)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    entry = lookup_run(settings, args.run)
    with run_context(settings, entry.run_id, entry.output_uri) as ctx:
        ctx.verify()
        result = cancel_run(ctx)
    print(f"run {entry.run_id}: cancel requested, {result['cancelled_jobs']} live job(s) "
          "cancelled; what finished is still merged")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    entry = lookup_run(settings, args.run)
    started = RegisteredRun(run_id=entry.run_id, output_uri=entry.output_uri, created=False)
    if settings.embedded:
        require_api_key(settings)
    elif args.detach:
        configure(settings)
        send_plan(started.run_id, started.output_uri)
        print(started.run_id)
        return EXIT_OK
    return drive(settings, started, resume=True, as_json=args.json)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    skipped: list[str] = []
    found = registry(settings).entries(unreadable=lambda key, _: skipped.append(key))
    entries = sorted(found, key=lambda e: e.created_at, reverse=True)
    for entry in entries[: args.limit]:
        try:
            state = read_progress(_store(entry.output_uri)).state
        except ShardlineError:
            state = "unknown"
        print(f"{entry.run_id}\t{state}\t{entry.created_at:%Y-%m-%d %H:%M}\t{entry.output_uri}")
    if skipped:
        print(f"shardline: skipped {len(skipped)} registry object(s) that are not run entries: "
              f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", file=sys.stderr)
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """Free provider files and jobs Shardline made and no longer needs (the orphan sweep)."""
    ApiKeyPool(settings.key_pool()).primary()  # a clear error when no key is configured
    report = sweep_orphans(settings, dry_run=args.dry_run)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        verbs = {"delete_file": "delete file", "cancel_job": "cancel job",
                 "delete_job": "delete job"}
        for item in report.actions:
            done = "would " if report.dry_run else ("" if item.done else "FAILED ")
            size = f" ({item.size_bytes} bytes)" if item.size_bytes else ""
            print(f"{done}{verbs[item.kind]} {item.name}{size}: {item.part}: {item.reason}")
        kept = ", ".join(f"{count} {why}" for why, count in report.kept.items()) or "nothing"
        print(f"swept {report.keys_listed} key(s): {report.files_deleted} file(s) deleted "
              f"({report.bytes_freed} bytes), {report.jobs_cancelled} job(s) cancelled, "
              f"{report.jobs_deleted} deleted; kept {kept}"
              + (" (dry run: nothing changed)" if report.dry_run else ""))
    for error in report.errors:
        print(f"shardline: sweep: {error}", file=sys.stderr)
    return EXIT_FAILURE if report.errors else EXIT_OK


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    print(orjson.dumps(run_spec_schema(), option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, _settings: Settings) -> int:
    base = Path(args.dir).expanduser().resolve()
    work = base / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    console = _console()
    requests_path = work / "requests.jsonl"
    lines = write_sample(requests_path, args.requests)
    console.print(f"demo: {lines} input lines in {requests_path}")
    with emulator_process(work) as base_url:
        console.print(f"demo: emulator on {base_url}")
        demo_settings = load_settings(
            api_key=DEMO_KEY,
            api_keys=[],
            api_base_url=base_url,
            broker_url=None,
            result_backend=None,
            state_uri=str(work / "state"),
            poll_initial_seconds=0.5,
            poll_max_seconds=2.0,
        )
        spec = RunSpec(
            input_uri=str(requests_path),
            output_uri=str(work / "out"),
            options=RunOptions(shard_max_requests=args.shard_max_requests),
            labels={"demo": "true"},
        )
        started = register_run(demo_settings, spec)
        code = drive(demo_settings, started, resume=False, as_json=False)
    out = work / "out"
    console.print(f"results: {out / 'results.jsonl'}\nerrors:  {out / 'errors.jsonl'}\n"
                  f"rejected: {out / 'rejected.jsonl'}\nsummary: {out / 'summary.json'}")
    return code


def cmd_emulator(args: argparse.Namespace, settings: Settings) -> int:
    return _emulator(args.emulator_args)


def _emulator(argv: list[str]) -> int:
    """The bundled emulator's own command line; imported only here, so that no worker
    process loads the emulator (workers only ever talk HTTP to it)."""
    from emulator.cli import main as emulator_main

    return emulator_main(argv)


# ---- parser ---------------------------------------------------------------------------


def _run_options(parser: argparse.ArgumentParser, *, estimate: bool = False) -> None:
    parser.add_argument("input", help="JSONL of requests: a path, file://, s3:// or gs:// URI")
    if estimate:
        parser.set_defaults(out="-", idempotency_key=None, client=DEFAULT_CLIENT, label=None,
                            dry_run=True)
    else:
        parser.add_argument("--out", required=True, help="output prefix the run owns")
    parser.add_argument("--model", help="model name (default: the settings' for the kind)")
    parser.add_argument("--kind", choices=["generate", "embed"], default="generate")
    parser.add_argument(
        "--provider", choices=list(get_args(ProviderName)),
        help="whose batch API runs it (default: SHARDLINE_PROVIDER, else gemini)",
    )
    parser.add_argument(
        "--inline", action=argparse.BooleanOptionalAction, default=None,
        help="Gemini: parts inline in the create call (--inline), always files (--no-inline); "
        "default: by size",
    )
    parser.add_argument("--shard-max-bytes", type=parse_size, help="e.g. 500MB (max 2 GiB)")
    parser.add_argument("--shard-max-requests", type=int)
    if not estimate:
        parser.add_argument("--idempotency-key", help="the same key twice starts one run")
        parser.add_argument("--client", default=DEFAULT_CLIENT,
                            help="namespace of the idempotency key (default: %(default)s)")
        parser.add_argument("--label", action="append", type=_label, metavar="NAME=VALUE")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the estimate (lines, tokens, cost, jobs, time) and stop")
    parser.add_argument("--no-cache", action="store_true",
                        help="every request to the provider; nothing read from or kept in the "
                        "request cache")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="do not submit parts once the estimated cost would pass this")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    schema = parser.add_mutually_exclusive_group()
    schema.add_argument("--output-schema", metavar="SCHEMA",
                        help="a JSON Schema file (path or URI) every response's text must match")
    schema.add_argument("--schema-from-request", action="store_true",
                        help="check each response against its request's own response schema")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shardline",
        description="Huge LLM workloads through the Gemini Batch API, with Celery workers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", cmd_run, "submit a run and wait for it, showing progress")
    _run_options(run)
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics on this port while the run goes "
                     "(default: SHARDLINE_METRICS_PORT; 0 picks a free port)")
    _run_options(command("submit", cmd_submit, "enqueue a run and print its id"))
    _run_options(command("estimate", cmd_estimate, "lines, tokens, cost, jobs and time of an "
                         "input, without uploading anything"), estimate=True)
    add_cache_arguments(command("cache", cmd_cache, "the request cache: stats, or prune by "
                                "age and size"), parse_size)
    for name, handler, text in (
        ("status", cmd_status, "show a run's progress or summary"),
        ("watch", cmd_watch, "follow a run until it is done"),
        ("cancel", cmd_cancel, "cancel a run's live jobs; what finished is still merged"),
        ("resume", cmd_resume, "pick a run up from its records (after a broker loss)"),
    ):
        sub = command(name, handler, text)
        sub.add_argument("run", help="run id, or the run's output location")
        sub.add_argument("--json", action="store_true")
        if name == "resume":
            sub.add_argument("--detach", action="store_true",
                             help="with a broker: enqueue and return instead of watching")
    listing = command("list", cmd_list, "list recent runs")
    listing.add_argument("--limit", type=int, default=20)
    sweep = command("sweep", cmd_sweep, "free provider files and jobs of finished or forgotten "
                    "parts (never anything Shardline did not make)")
    sweep.add_argument("--dry-run", action="store_true", help="only report what it would do")
    sweep.add_argument("--json", action="store_true")
    command("schema", cmd_schema, "print the JSON schema of the start_run payload")
    demo = command("demo", cmd_demo, "run a sample workload against the bundled emulator")
    demo.add_argument("--dir", default="shardline-demo", help="where the demo writes")
    demo.add_argument("--requests", type=int, default=3000)
    demo.add_argument("--shard-max-requests", type=int, default=500)
    emulator = command("emulator", cmd_emulator, "serve the bundled Gemini API emulator")
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["emulator"]:  # pass every switch through untouched
        return _emulator(raw[1:])
    args = build_parser().parse_args(raw)
    try:
        settings = load_settings()
        code: int = args.handler(args, settings)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (``shardline list | head -1``): what it wanted, it has.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ConfigError, InputError, RunError, ValueError) as exc:
        print(f"shardline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ProviderError, StorageError) as exc:
        print(f"shardline: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OperationalError as exc:
        print(f"shardline: cannot reach the broker: {exc}", file=sys.stderr)
        return EXIT_FAILURE


__all__ = ["build_parser", "main", "parse_size"]
if __name__ == "__main__":
    raise SystemExit(main())
