"""Keys grouped into Google Cloud projects (``--projects``, ``EMULATOR_PROJECTS``).

Files and batch jobs belong to a project, not to the key that made them: every key of the
project sees them, and the project's limits (live jobs, file storage) count them all.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emulator.cli import build_parser, config_from_args
from emulator.config import EmulatorConfig, config_from_env, parse_projects
from tests.emulator.raw_api import create_inline_batch, jsonl, request, upload
from tests.emulator.test_limits_and_faults import SLOW, assert_quota_429

KEY1, KEY2, KEY3 = "key-one", "key-two", "key-three"
PROJECTS = {"projA": [KEY1, KEY2], "projB": [KEY3]}


def test_parse_projects_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch):
    assert parse_projects("projA=KEY1, KEY2; projB=KEY3;") == {
        "projA": ["KEY1", "KEY2"],
        "projB": ["KEY3"],
    }
    args = build_parser().parse_args(["--projects", "projA=a,b", "--projects", "projB=c"])
    assert config_from_args(args).projects == {"projA": ["a", "b"], "projB": ["c"]}
    monkeypatch.setenv("EMULATOR_PROJECTS", "p=x,y")
    assert config_from_env()["projects"] == {"p": ["x", "y"]}
    with pytest.raises(ValueError, match="NAME=KEY1"):
        parse_projects("projA")


def test_bad_groupings_are_refused_without_naming_keys():
    with pytest.raises(ValidationError) as shared_key:
        EmulatorConfig(projects={"a": ["secret-k"], "b": ["secret-k"]})
    assert "share a key" in str(shared_key.value)
    assert EmulatorConfig(api_keys=["x"], projects={"a": ["y"]}).accepts("y")
    assert not EmulatorConfig(api_keys=["x"], projects={"a": ["y"]}).accepts("z")
    with pytest.raises(ValidationError, match="project name"):
        EmulatorConfig(projects={"a b": ["x"]})


def test_keys_of_one_project_share_files_and_jobs(emulator_factory):
    emulator = emulator_factory(projects=PROJECTS)
    with emulator.http(KEY1) as one, emulator.http(KEY2) as two, emulator.http(KEY3) as three:
        file = upload(one, jsonl([{"key": "a", "request": request("hi")}]))
        job = create_inline_batch(two, ["x"]).json()["name"]
        assert [f["name"] for f in two.get("/v1beta/files").json()["files"]] == [file["name"]]
        assert two.get(f"/v1beta/{file['name']}").status_code == 200
        assert [op["name"] for op in one.get("/v1beta/batches").json()["operations"]] == [job]
        # another project sees neither
        assert three.get("/v1beta/files").json() == {}
        assert three.get(f"/v1beta/{job}").status_code == 404
        assert three.delete(f"/v1beta/{file['name']}").status_code == 404
        # any key of the project may delete what another key made
        assert two.delete(f"/v1beta/{file['name']}").status_code == 200
    owners = {f["keyFingerprint"] for f in emulator.jobs()}
    assert owners == {"project:projA"}


def test_live_job_limit_is_per_project(emulator_factory):
    emulator = emulator_factory(projects=PROJECTS, max_live_jobs_per_key=2, faults=SLOW)
    with emulator.http(KEY1) as one, emulator.http(KEY2) as two, emulator.http(KEY3) as three:
        assert create_inline_batch(one, ["a"]).status_code == 200
        assert create_inline_batch(two, ["b"]).status_code == 200
        # the second key of projA adds no capacity
        assert_quota_429(create_inline_batch(one, ["c"]), "60s")
        assert_quota_429(create_inline_batch(two, ["c"]), "60s")
        # projB has its own 2 slots
        assert create_inline_batch(three, ["d"]).status_code == 200
        assert create_inline_batch(three, ["e"]).status_code == 200
    # an ungrouped key is a project of its own
    with emulator.http() as loose:
        assert create_inline_batch(loose, ["f"]).status_code == 200


def test_file_storage_is_per_project(emulator_factory):
    data = jsonl([{"key": str(i), "request": request("x" * 200)} for i in range(3)])
    emulator = emulator_factory(projects=PROJECTS, storage_bytes_per_key=len(data) + 10)
    with emulator.http(KEY1) as one, emulator.http(KEY2) as two, emulator.http(KEY3) as three:
        upload(one, data)
        started = two.post(
            "/upload/v1beta/files",
            json={"file": {"display_name": "more"}},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": str(len(data)),
            },
        )
        error = assert_quota_429(started, "60s")
        assert "this project may hold" in error["message"]
        upload(three, data)  # another project's storage is its own
