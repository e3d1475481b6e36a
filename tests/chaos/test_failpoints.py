"""shared/failpoints.py: a no-op unless armed; ``kill@N`` kills the process on the N-th hit."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared import failpoints

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
from shared.failpoints import failpoint
for n in range(1, 6):
    print(n, flush=True)
    failpoint("plan.mid_pass")
print("survived", flush=True)
"""


def run_script(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != failpoints.ENV}
    if spec is not None:
        env[failpoints.ENV] = spec
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )


def test_unarmed_is_a_no_op() -> None:
    result = run_script(None)
    assert result.returncode == 0
    assert result.stdout.split()[-1] == "survived"


def test_kill_on_the_nth_hit() -> None:
    result = run_script("merge.mid_concat=kill;plan.mid_pass=kill@3")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2", "3"]


def test_other_points_do_not_fire() -> None:
    result = run_script("create.after_call=kill")
    assert result.returncode == 0


def test_off_disarms() -> None:
    assert failpoints.parse("plan.mid_pass=off, create.after_call=kill@2") == {
        "create.after_call": ("kill", 2)
    }


@pytest.mark.parametrize(
    "spec", ["plan.mid_pass", "no.such.point=kill", "plan.mid_pass=explode", "plan.mid_pass=kill@0"]
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="SHARDLINE_FAILPOINTS"):
        failpoints.parse(spec)


def test_on_reads_guards_every_read_after_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    hits: list[str] = []
    monkeypatch.setenv(failpoints.ENV, "upload.after_chunk=kill@99")
    failpoints.reset()
    monkeypatch.setattr(failpoints, "failpoint", hits.append)
    try:
        with failpoints.on_reads("upload.after_chunk", _source(b"abcdef")) as reader:
            assert [reader.read(2) for _ in range(3)] == [b"ab", b"cd", b"ef"]
    finally:
        failpoints.reset()
    assert hits == ["upload.after_chunk", "upload.after_chunk"]


def test_on_reads_returns_the_source_when_unarmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.reset()
    source = _source(b"x")
    assert failpoints.on_reads("upload.after_chunk", source) is source


def test_every_point_is_placed_in_the_code() -> None:
    code = "".join(
        path.read_text() for path in (REPO / "shared").rglob("*.py") if path.name != "failpoints.py"
    )
    missing = [p for p in failpoints.POINTS if f'"{p}"' not in code]
    assert not missing


class _source:  # noqa: N801 - a context manager factory, named like one
    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def __enter__(self) -> io.BytesIO:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
