"""``python -m emulator`` / ``shardline emulator``: run the Gemini File + Batch API emulator.

Flags override ``EMULATOR_*`` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from emulator.app import create_app
from emulator.config import EmulatorConfig, config_from_env, load_faults, parse_projects

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn, but SIGTERM/SIGINT end with exit code 0 after the graceful shutdown.

    (uvicorn re-raises the signal once it has shut down; a supervisor would log a crash.)
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emulator",
        description="A local, faithful Gemini File API + Batch API server.",
    )
    parser.add_argument("--host", help="Interface to bind (default 127.0.0.1).")
    parser.add_argument("--port", type=int, help="Port to bind (default 8089).")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="Accepted API key (repeatable). Without any, every non-empty key is accepted.",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        metavar="X",
        help="Emulated seconds per real second (default 60: a 2-minute job takes 2 s).",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="Keep files and jobs here across restarts (default: a temp dir removed at exit).",
    )
    parser.add_argument(
        "--faults", metavar="FILE", help="JSON file of fault settings (see emulator.faults)."
    )
    parser.add_argument(
        "--keep-order",
        action="store_true",
        default=None,
        help="Write output lines in input order (default: a deterministic scramble).",
    )
    parser.add_argument(
        "--allow-download-uploaded",
        action="store_true",
        default=None,
        help="Let uploaded files be downloaded too (the live API serves only generated ones).",
    )
    parser.add_argument(
        "--retry-after-header",
        action="store_true",
        default=None,
        help="Send Retry-After on quota 429s (the live API does not).",
    )
    parser.add_argument(
        "--projects",
        action="append",
        metavar="NAME=KEY1,KEY2;...",
        help="Group keys into Google Cloud projects (repeatable): keys of one project share "
        "its files, jobs and limits. A key in no project is a project of its own.",
    )
    parser.add_argument(
        "--max-live-jobs", type=int, help="Concurrent live jobs per project (100)."
    )
    parser.add_argument(
        "--token-budget", type=int, help="Enqueued tokens per project and model (unlimited)."
    )
    parser.add_argument(
        "--storage-bytes", type=int, help="File bytes one project may hold (20 GB)."
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level.")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    values: dict[str, Any] = config_from_env()
    flags = {
        "host": args.host,
        "port": args.port,
        "api_keys": args.api_keys,
        "time_scale": args.time_scale,
        "data_dir": args.data_dir,
        "keep_order": args.keep_order,
        "allow_download_uploaded": args.allow_download_uploaded,
        "quota_retry_after_header": args.retry_after_header,
        "max_live_jobs_per_key": args.max_live_jobs,
        "enqueued_token_budget": args.token_budget,
        "storage_bytes_per_key": args.storage_bytes,
    }
    values.update({name: value for name, value in flags.items() if value is not None})
    if args.projects:
        values["projects"] = parse_projects(";".join(args.projects))
    if args.faults:
        values["faults"] = load_faults(Path(args.faults))
    return EmulatorConfig.model_validate(values)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), serve until interrupted; the exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"emulator: invalid settings: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    print(
        f"Gemini emulator on http://{config.host}:{config.port} "
        f"(time scale {config.time_scale:g}x, data {config.data_dir or 'temporary'})",
        flush=True,
    )
    server = _Server(
        uvicorn.Config(app, host=config.host, port=config.port, log_level=args.log_level)
    )
    server.run()
    return 0
