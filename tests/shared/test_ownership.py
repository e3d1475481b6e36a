"""shared.ownership: empty outputs, no run inside another, and the run-id check of tasks."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from shared.access import AccessPolicy, locate
from shared.errors import AccessError
from shared.ownership import (
    UNREADABLE,
    check_not_inside_a_run,
    check_output_free,
    manifest_run_id,
    verify_run,
)
from shared.run.layout import MANIFEST
from shared.settings import Settings
from shared.storage import open_storage


def put_manifest(uri: str, run_id: str) -> None:
    open_storage(uri).write_bytes(MANIFEST, orjson.dumps({"run_id": run_id, "spec": {}}))


def keys(uri: str) -> list[str]:
    return [info.key for info in open_storage(uri).list("")]


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    return f"memory://own-{uuid.uuid4().hex[:8]}/out"


def test_an_empty_or_missing_output_is_free(root: str) -> None:
    check_output_free(open_storage(f"{root}/new"), f"{root}/new", "run-1")


def test_an_output_holding_anything_is_not_free(root: str) -> None:
    open_storage(f"{root}/old").write_bytes("results.jsonl", b'{"key": "k"}\n')
    with pytest.raises(AccessError, match="not empty"):
        check_output_free(open_storage(f"{root}/old"), f"{root}/old", "run-1")


def test_the_same_run_may_register_again_another_may_not(root: str) -> None:
    put_manifest(f"{root}/r", "run-1")
    open_storage(f"{root}/r").write_bytes("results.jsonl", b"")
    check_output_free(open_storage(f"{root}/r"), f"{root}/r", "run-1")
    with pytest.raises(AccessError, match="holds another run") as caught:
        check_output_free(open_storage(f"{root}/r"), f"{root}/r", "run-2")
    assert "run-1" not in str(caught.value), "another caller's run id stays private"


def test_an_unreadable_manifest_belongs_to_nobody(root: str) -> None:
    open_storage(f"{root}/bad").write_bytes(MANIFEST, b"not json")
    assert manifest_run_id(open_storage(f"{root}/bad")) == UNREADABLE
    with pytest.raises(AccessError, match="holds another run"):
        check_output_free(open_storage(f"{root}/bad"), f"{root}/bad", UNREADABLE.strip("<>"))


def test_no_output_inside_another_run(root: str) -> None:
    put_manifest(f"{root}/a", "run-a")
    for inside in (f"{root}/a/sub", f"{root}/a/x/y"):
        with pytest.raises(AccessError, match="inside another run's output"):
            check_not_inside_a_run(locate(inside), inside)
    check_not_inside_a_run(locate(f"{root}/b"), f"{root}/b")
    check_not_inside_a_run(locate(f"{root}/ab"), f"{root}/ab")


def test_an_output_around_another_run_is_not_empty(root: str) -> None:
    put_manifest(f"{root}/parent/child", "run-c")
    with pytest.raises(AccessError, match="not empty"):
        check_output_free(open_storage(f"{root}/parent"), f"{root}/parent", "run-p")


def test_a_task_acts_only_on_the_run_its_output_holds(tmp_path: Path) -> None:
    policy = AccessPolicy.from_settings(Settings(state_uri=str(tmp_path / "state")))
    output = str(tmp_path / "out")
    put_manifest(output, "run-1")
    before = keys(output)
    verify_run(policy, open_storage(output), "run-1", output)
    with pytest.raises(AccessError, match="does not hold this run"):
        verify_run(policy, open_storage(output), "run-2", output)
    with pytest.raises(AccessError, match="does not hold this run"):
        verify_run(policy, open_storage(str(tmp_path / "none")), "run-1", str(tmp_path / "none"))
    assert keys(output) == before


def test_a_task_refuses_an_output_the_policy_no_longer_allows(tmp_path: Path) -> None:
    output = str(tmp_path / "out")
    put_manifest(output, "run-1")
    policy = AccessPolicy.from_settings(Settings(
        state_uri=str(tmp_path / "state"), broker_url="redis://127.0.0.1:6379/0",
        output_prefixes=str(tmp_path / "elsewhere")))
    with pytest.raises(AccessError, match="SHARDLINE_OUTPUT_PREFIXES"):
        verify_run(policy, open_storage(output), "run-1", output)
