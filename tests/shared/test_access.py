"""shared.access: the allowlists, the deny list and canonical containment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.access import AccessPolicy, Location, denied_locations, locate
from shared.errors import AccessError, InputError
from shared.settings import Settings, load_settings

BROKER = "redis://127.0.0.1:6379/0"


def policy(tmp_path: Path, **settings: object) -> AccessPolicy:
    return AccessPolicy.from_settings(Settings(state_uri=str(tmp_path / "state"), **settings))


# ---- canonical locations ----------------------------------------------------------------


def test_local_paths_are_resolved(tmp_path: Path) -> None:
    assert locate(str(tmp_path / "a" / ".." / "b")) == locate(str(tmp_path / "b"))
    assert locate(f"file://{tmp_path}/b") == locate(str(tmp_path / "b"))
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert locate(str(tmp_path / "link" / "x")) == locate(str(tmp_path / "real" / "x"))


def test_containment_is_on_segment_boundaries() -> None:
    inbox = locate("s3://b/in")
    assert inbox.contains(locate("s3://b/in/x.jsonl"))
    assert inbox.contains(locate("s3://b/in/"))
    assert not inbox.contains(locate("s3://b/inbox/x.jsonl"))
    assert not inbox.contains(locate("s3://other/in/x.jsonl"))
    assert not inbox.contains(locate("gs://b/in/x.jsonl"))
    assert locate("s3://b").contains(locate("s3://b/anything/at/all"))
    assert locate("gcs://b/in") == locate("gs://b/in")
    assert not locate("/data/in").contains(locate("/data/inbox"))
    assert locate("/data/in").overlaps(locate("/data")) and locate("/data").overlaps(
        locate("/data/in"))


@pytest.mark.parametrize("uri", ["s3://b/in/../secret", "s3://b/in//x", "s3://b/./x",
                                 "s3://user:pw@b/x", "s3:///x", "ftp://host/x", "s3://b/x?v=1"])
def test_uris_that_are_not_canonical_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        locate(uri)


def test_ancestors_are_nearest_first() -> None:
    assert [str(a) for a in locate("s3://b/x/y").ancestors()] == ["s3://b/x", "s3://b"]
    assert [str(a) for a in locate("/x/y").ancestors()] == ["/x", "/"]


# ---- defaults by mode ---------------------------------------------------------------------


def test_embedded_allows_local_paths_by_default(tmp_path: Path) -> None:
    access = policy(tmp_path)
    assert access.check_input(str(tmp_path / "in.jsonl")) == locate(str(tmp_path / "in.jsonl"))
    access.check_output(str(tmp_path / "out"))
    access.check_input("s3://b/in/x.jsonl")


def test_a_brokered_worker_allows_nothing_until_configured(tmp_path: Path) -> None:
    access = policy(tmp_path, broker_url=BROKER)
    with pytest.raises(AccessError, match="SHARDLINE_INPUT_PREFIXES"):
        access.check_input(str(tmp_path / "in.jsonl"))
    with pytest.raises(AccessError, match="SHARDLINE_INPUT_PREFIXES"):
        access.check_input("s3://b/in/x.jsonl")
    with pytest.raises(AccessError, match="SHARDLINE_OUTPUT_PREFIXES"):
        access.check_output(str(tmp_path / "out"))


# ---- allowlists ---------------------------------------------------------------------------


def test_local_allowlist(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    access = policy(tmp_path, broker_url=BROKER, input_prefixes=str(tmp_path / "in"),
                    output_prefixes=f"{tmp_path}/out,s3://b/out")
    access.check_input(str(tmp_path / "in" / "a.jsonl"))
    access.check_output(str(tmp_path / "out" / "run1"))
    access.check_output("s3://b/out/run1")
    for outside in (tmp_path / "inbox" / "a.jsonl", tmp_path / "a.jsonl"):
        with pytest.raises(AccessError, match="not under an allowed input prefix"):
            access.check_input(str(outside))
    with pytest.raises(AccessError, match="not under an allowed output prefix"):
        access.check_output(str(tmp_path / "in" / "out"))


def test_dot_dot_cannot_climb_out_of_a_prefix(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "private.jsonl").write_text("{}\n")
    access = policy(tmp_path, broker_url=BROKER, input_prefixes=str(tmp_path / "in"))
    with pytest.raises(AccessError, match="not under an allowed input prefix"):
        access.check_input(f"{tmp_path}/in/../private.jsonl")
    with pytest.raises(AccessError):
        access.check_input(f"file://{tmp_path}/in/../private.jsonl")


def test_a_symlink_out_of_an_allowed_prefix_is_judged_by_its_target(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "private.jsonl").write_text("{}\n")
    (inbox / "innocent.jsonl").symlink_to(tmp_path / "private.jsonl")
    (inbox / "dir").symlink_to(tmp_path)
    (inbox / "fine.jsonl").symlink_to(inbox / "real.jsonl")
    access = policy(tmp_path, broker_url=BROKER, input_prefixes=str(inbox),
                    output_prefixes=str(tmp_path / "out"))
    with pytest.raises(AccessError):
        access.check_input(str(inbox / "innocent.jsonl"))
    with pytest.raises(AccessError):
        access.check_input(str(inbox / "dir" / "private.jsonl"))
    access.check_input(str(inbox / "fine.jsonl"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "escape").symlink_to("/etc")
    with pytest.raises(AccessError):
        access.check_output(str(tmp_path / "out" / "escape"))


def test_a_symlinked_prefix_allows_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    access = policy(tmp_path, broker_url=BROKER, input_prefixes=str(tmp_path / "alias"))
    access.check_input(str(tmp_path / "real" / "a.jsonl"))
    access.check_input(str(tmp_path / "alias" / "a.jsonl"))


def test_s3_allowlist_is_bucket_and_segments() -> None:
    access = AccessPolicy.from_settings(Settings(
        broker_url=BROKER, state_uri="s3://ops/shardline/state",
        input_prefixes="s3://data/in/, gs://lake/drops",
        output_prefixes="s3://data/out",
    ))
    access.check_input("s3://data/in/2026/x.jsonl")
    access.check_input("gs://lake/drops/x.jsonl")
    access.check_input("gcs://lake/drops/x.jsonl")
    access.check_output("s3://data/out/nightly")
    for uri in ("s3://data/inbox/x.jsonl", "s3://data/x.jsonl", "s3://other/in/x.jsonl",
                "gs://data/in/x.jsonl", "s3://data/in/../out/x.jsonl", "/data/in/x.jsonl"):
        with pytest.raises(AccessError):
            access.check_input(uri)
    for uri in ("s3://data/outer", "s3://data", "s3://ops/shardline/out"):
        with pytest.raises(AccessError):
            access.check_output(uri)


# ---- the deny list ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/etc/passwd", "/proc/self/environ", "/sys/kernel/notes",
                                  "/dev/zero", "/run/secrets/SHARDLINE_API_KEY",
                                  "/proc/../proc/self/environ"])
def test_system_files_are_refused_whatever_the_allowlist(tmp_path: Path, path: str) -> None:
    for access in (policy(tmp_path), policy(tmp_path, broker_url=BROKER, input_prefixes="/")):
        with pytest.raises(AccessError, match="a protected location"):
            access.check_input(path)


def test_a_symlink_into_the_deny_list_is_refused(tmp_path: Path) -> None:
    (tmp_path / "environ.jsonl").symlink_to("/proc/self/environ")
    with pytest.raises(AccessError, match="a protected location"):
        policy(tmp_path).check_input(str(tmp_path / "environ.jsonl"))


def test_the_secrets_dir_and_credentials_are_denied(tmp_path: Path, env) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SHARDLINE_API_KEY").write_text("AIza-secret")
    creds = tmp_path / "gcp.json"
    env(SHARDLINE_SECRETS_DIR=str(secrets), GOOGLE_APPLICATION_CREDENTIALS=str(creds),
        HOME=str(tmp_path / "home"))
    access = AccessPolicy.from_settings(load_settings(state_uri=str(tmp_path / "state")))
    for path in (secrets / "SHARDLINE_API_KEY", creds, tmp_path / "home" / ".aws" / "credentials",
                 Path(sys.prefix) / "pyvenv.cfg"):
        with pytest.raises(AccessError, match="a protected location"):
            access.check_input(str(path))
    access.check_input(str(tmp_path / "in.jsonl"))


def test_the_state_and_the_schedule_are_denied(tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.toml"
    access = policy(tmp_path, schedule_file=schedule, input_prefixes=str(tmp_path),
                    output_prefixes=str(tmp_path))
    for path in (tmp_path / "state" / "runs" / "x.json", schedule):
        with pytest.raises(AccessError, match="a protected location"):
            access.check_input(str(path))
    with pytest.raises(AccessError, match="overlaps Shardline's state"):
        access.check_output(str(tmp_path / "state" / "out"))
    with pytest.raises(AccessError, match="overlaps Shardline's state"):
        access.check_output(str(tmp_path))  # would hold the state


def test_an_output_may_not_hold_a_protected_location(tmp_path: Path) -> None:
    access = policy(tmp_path, input_prefixes="/", output_prefixes="/")
    for uri in ("/", "/var/../etc/shardline", str(Path(sys.prefix).parent)):
        with pytest.raises(AccessError):
            access.check_output(uri)


def test_a_remote_state_is_denied_too() -> None:
    access = AccessPolicy.from_settings(Settings(
        state_uri="s3://ops/shardline", input_prefixes="s3://ops", output_prefixes="s3://ops"))
    with pytest.raises(AccessError):
        access.check_input("s3://ops/shardline/runs/k-1.json")
    with pytest.raises(AccessError, match="overlaps Shardline's state"):
        access.check_output("s3://ops")
    access.check_output("s3://ops/out/1")


def test_outputs_never_go_inside_a_run_s_records(tmp_path: Path) -> None:
    with pytest.raises(AccessError, match="_shardline"):
        policy(tmp_path).check_output(str(tmp_path / "out" / "_shardline" / "shards"))
    with pytest.raises(AccessError, match="_shardline"):
        policy(tmp_path).check_output("s3://b/out/_shardline")


def test_refusals_are_input_errors_that_never_show_a_setting(tmp_path: Path) -> None:
    secret_prefix = "s3://hidden-bucket-name/in"
    access = policy(tmp_path, broker_url=BROKER, input_prefixes=secret_prefix)
    with pytest.raises(InputError) as caught:
        access.check_input("s3://b/x.jsonl")
    assert "hidden-bucket-name" not in str(caught.value)
    assert str(tmp_path) not in str(caught.value)


def test_denied_locations_are_canonical(tmp_path: Path) -> None:
    denied = denied_locations(state_uri=str(tmp_path / "s" / ".." / "state"), secrets_dir=None,
                              schedule_file=None, environ={})
    assert locate(str(tmp_path / "state")) in denied
    assert Location(scheme="file", segments=("proc",)) in denied


# ---- settings -----------------------------------------------------------------------------


def test_prefix_settings_come_from_the_environment(env, tmp_path: Path) -> None:
    env(SHARDLINE_INPUT_PREFIXES=f" {tmp_path}/in , s3://b/in ",
        SHARDLINE_OUTPUT_PREFIXES="gs://b/out")
    settings = load_settings()
    assert settings.input_prefixes == [f"{tmp_path}/in", "s3://b/in"]
    assert settings.output_prefixes == ["gs://b/out"]


@pytest.mark.parametrize("value", ["relative/dir", "s3://b/../x", "ftp://x/y"])
def test_bad_prefixes_are_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="input_prefixes"):
        Settings(input_prefixes=value)


def test_home_relative_prefixes_are_expanded(env, tmp_path: Path) -> None:
    env(HOME=str(tmp_path))
    access = AccessPolicy.from_settings(Settings(
        broker_url=BROKER, state_uri=str(tmp_path / "state"), input_prefixes="~/in"))
    access.check_input(os.path.join(tmp_path, "in", "x.jsonl"))
