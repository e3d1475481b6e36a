"""The reconcile task counts its passes and findings for /metrics."""

from __future__ import annotations

from pathlib import Path

from shared import events
from shared.settings import Settings
from workers.app import configure
from workers.tasks.maintenance import reconcile


def test_a_pass_is_counted(tmp_path: Path) -> None:
    configure(Settings(state_uri=str(tmp_path / "state")))
    passes = events.RECONCILER_PASSES._value.get()
    report = reconcile.apply().get()
    assert report["runs_checked"] == 0
    assert events.RECONCILER_PASSES._value.get() == passes + 1
    assert events.RECONCILER_LAST_PASS._value.get() > 0
