"""deploy/beat (and the Kubernetes copy): the schedule files load with the project's reader,
``shared.schedule.load_schedule``, exactly as beat and the workers load them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy._deploy import DEPLOY, K8S

schedule = pytest.importorskip("shared.schedule", reason="the schedule reader (beat helper)")

EXAMPLE = DEPLOY / "beat" / "schedule.example.toml"
FILES = [EXAMPLE, DEPLOY / "beat" / "schedule.empty.toml", K8S / "schedule.toml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_loads(path: Path):
    schedule.load_schedule(path)


def test_the_example_shows_every_kind_of_entry():
    loaded = schedule.load_schedule(EXAMPLE)
    assert {run.cron is None for run in loaded.run} == {True, False}, "cron and every"
    assert {run.spec.get("kind", "generate") for run in loaded.run} == {"generate", "embed"}
    assert loaded.inbox


def test_the_example_uses_shared_storage():
    loaded = schedule.load_schedule(EXAMPLE)
    locations = [run.spec["input_uri"] for run in loaded.run]
    locations += [run.spec["output_uri"] for run in loaded.run]
    locations += [i.input_prefix for i in loaded.inbox] + [i.output_prefix for i in loaded.inbox]
    assert all(loc.startswith(("s3://", "gs://")) for loc in locations), locations


def test_the_empty_files_schedule_nothing():
    for path in FILES[1:]:
        loaded = schedule.load_schedule(path)
        assert not loaded.run and not loaded.inbox, path


def test_a_broken_copy_is_refused(tmp_path: Path):
    copy = tmp_path / "schedule.toml"
    shutil.copy(EXAMPLE, copy)
    text = copy.read_text()
    fixed_output = 'output_uri = "s3://acme-batch/nightly/out"'
    copy.write_text(text.replace('output_uri = "s3://acme-batch/nightly/out/{date}"', fixed_output))
    assert fixed_output in copy.read_text()
    with pytest.raises(Exception, match="output_uri"):  # every fire needs its own output
        schedule.load_schedule(copy)
