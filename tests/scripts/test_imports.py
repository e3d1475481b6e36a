"""The import graph has no cycle, between packages or between modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "imports.py"


def test_no_import_cycles() -> None:
    for extra in ([], ["--modules"]):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--check", *extra],
            capture_output=True, text=True, check=False,
        )
        assert done.returncode == 0, done.stdout
        assert "no cycles" in done.stdout


def test_the_check_finds_a_cycle(tmp_path: Path) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / "shared").mkdir(exist_ok=True)
        (tmp_path / "shared" / f"{name}.py").write_text(f"from shared import {other}\n")
    (tmp_path / "shared" / "__init__.py").write_text("")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--root", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 1
    assert "cycle: shared/a <-> shared/b" in done.stdout
