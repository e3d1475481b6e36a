"""A refused start leaves nothing behind and says what is wrong with the input."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import AccessError, InputFileError, RunNotFoundError
from shared.pipeline import start
from shared.pipeline.start import lookup_run, register_run, registry
from shared.run.registry import run_id_for_key
from shared.run.spec import RunSpec


def test_a_start_refused_after_its_claim_leaves_no_registry_entry(
    harness, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"contents": [{"parts": [{"text": "x"}]}]}\n')
    out = str(tmp_path / "o")
    winner = register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=out))
    loser = RunSpec(input_uri=str(source), output_uri=out, idempotency_key="loser-1")

    with pytest.raises(AccessError, match="holds another run"):
        register_run(harness.settings, loser)  # refused before any claim

    assert [e.run_id for e in registry(harness.settings).entries()] == [winner.run_id]
    with pytest.raises(RunNotFoundError):  # not the winner's run under the loser's id
        lookup_run(harness.settings, run_id_for_key("loser-1"))
    moved = loser.model_copy(update={"output_uri": str(tmp_path / "o2")})
    assert register_run(harness.settings, moved).created  # the key is free again


def test_a_directory_as_input_says_so(harness, tmp_path: Path) -> None:
    spec = RunSpec(input_uri=str(tmp_path), output_uri=str(tmp_path / "o"))
    with pytest.raises(InputFileError, match=r": is a directory$"):
        register_run(harness.settings, spec)


def test_a_start_that_loses_the_race_after_its_claim_gives_the_claim_back(
    harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two starts on one empty output at once: both pass the emptiness check, the second
    finds the first one's manifest after claiming, and takes its registry entry back."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"contents": [{"parts": [{"text": "x"}]}]}\n')
    out = str(tmp_path / "o")
    winner = register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=out))
    monkeypatch.setattr(start, "check_output_free", lambda *args: None)  # as if concurrent
    loser = RunSpec(input_uri=str(source), output_uri=out, idempotency_key="loser-2")
    with pytest.raises(AccessError, match="holds another run"):
        register_run(harness.settings, loser)
    assert [e.run_id for e in registry(harness.settings).entries()] == [winner.run_id]
