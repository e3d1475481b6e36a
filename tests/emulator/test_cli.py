"""Command line and environment settings (emulator/cli.py, emulator/config.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import build_parser, config_from_args, main
from emulator.config import config_from_env


def parse(*argv: str):
    return config_from_args(build_parser().parse_args(list(argv)))


def test_defaults():
    config = parse()
    assert (config.host, config.port) == ("127.0.0.1", 8089)
    assert config.api_keys == []
    assert config.keep_order is False
    assert config.data_dir is None
    assert config.pending_seconds + config.running_seconds <= 3 * config.time_scale


def test_flags(tmp_path: Path):
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"seed": 4, "http": [{"endpoint": "batches.get"}]}))
    config = parse(
        "--host",
        "0.0.0.0",
        "--port",
        "9000",
        "--api-key",
        "a",
        "--api-key",
        "b",
        "--time-scale",
        "5",
        "--data-dir",
        str(tmp_path),
        "--faults",
        str(faults),
        "--keep-order",
        "--max-live-jobs",
        "3",
        "--token-budget",
        "1000",
    )
    assert config.port == 9000 and config.host == "0.0.0.0"
    assert config.api_keys == ["a", "b"]
    assert config.time_scale == 5
    assert config.data_dir == tmp_path
    assert config.faults.seed == 4 and config.faults.http[0].endpoint == "batches.get"
    assert config.keep_order is True
    assert config.max_live_jobs_per_key == 3
    assert config.enqueued_token_budget == 1000


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMULATOR_PORT", "7000")
    monkeypatch.setenv("EMULATOR_API_KEYS", "x, y")
    monkeypatch.setenv("EMULATOR_KEEP_ORDER", "true")
    monkeypatch.setenv("EMULATOR_FAULTS", '{"seed": 9}')
    assert config_from_env()["api_keys"] == ["x", "y"]
    config = parse("--port", "7001")
    assert config.port == 7001
    assert config.keep_order is True
    assert config.faults.seed == 9


def test_invalid_settings_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.json"
    bad.write_text('{"http": [{"code": 200}]}')
    assert main(["--faults", str(bad)]) == 2
    assert "invalid settings" in capsys.readouterr().err


def test_module_entry_point_help():
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "--time-scale" in done.stdout and "--faults" in done.stdout
