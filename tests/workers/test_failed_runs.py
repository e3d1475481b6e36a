"""``shardline run`` on inputs with nothing usable ends ``failed`` and exits 1, with the
reason on stderr; a gzip input runs. Real command, embedded mode, the emulator on loopback."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.emulator import EmulatorHandle
from tests.workers.test_refusals import _command, _env

LINE = json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}) + "\n"


def run(tmp_path: Path, emulator: EmulatorHandle, data: bytes, name: str
        ) -> subprocess.CompletedProcess[str]:
    source = tmp_path / name
    source.write_bytes(data)
    env = _env(tmp_path, SHARDLINE_API_KEY=emulator.api_key,
               SHARDLINE_API_BASE_URL=emulator.base_url,
               SHARDLINE_POLL_INITIAL_SECONDS="0.2", SHARDLINE_POLL_MAX_SECONDS="1")
    return subprocess.run(_command("run", str(source), "--out", str(tmp_path / f"out-{name}")),
                          env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.mark.parametrize(("data", "says"), [
    (b"", "no usable line: the input is empty"),
    (b"\n \n\n", "no usable line: all 3 lines were rejected"),
    (b'{"request": "not an object"}\n', "no usable line: all 1 lines were rejected"),
])
def test_nothing_usable_ends_failed_with_exit_1(
    tmp_path: Path, emulator: EmulatorHandle, data: bytes, says: str
) -> None:
    result = run(tmp_path, emulator, data, "in.jsonl")
    assert result.returncode == 1, result.stderr
    assert "failed: " in result.stderr and says in result.stderr


@pytest.mark.parametrize(("data", "says"), [
    (os.urandom(2000).replace(b"\n", b"").replace(b"\x1f", b"") + b"\n", "not JSONL"),
    (LINE.encode("utf-16"), "UTF-16 text (byte order mark FF FE): input must be UTF-8"),
])
def test_an_input_that_is_not_jsonl_is_refused_with_exit_2(
    tmp_path: Path, emulator: EmulatorHandle, data: bytes, says: str
) -> None:
    result = run(tmp_path, emulator, data, "in.jsonl")
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert not (tmp_path / "out-in.jsonl").exists()  # nothing was copied out


def test_a_gzip_input_runs(tmp_path: Path, emulator: EmulatorHandle) -> None:
    result = run(tmp_path, emulator, gzip.compress(LINE.encode() * 3), "in.jsonl.gz")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out-in.jsonl.gz" / "summary.json").read_text())
    assert summary["state"] == "succeeded" and summary["counts"]["results"] == 1
    assert summary["counts"]["rejected"] == 2  # the same key twice more
