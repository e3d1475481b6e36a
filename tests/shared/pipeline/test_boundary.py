"""The trust boundary of a run: what register_run, the plan, the tasks' run check, the registry
and the reconciler refuse, and that a refusal touches nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest

from shared.errors import AccessError, InputFileError, SpecError
from shared.pipeline.context import RunContext
from shared.pipeline.plan import plan_run
from shared.pipeline.reconcile import reconcile
from shared.pipeline.start import register_run, registry
from shared.run import layout
from shared.run.registry import run_id_for_key
from shared.run.spec import RunSpec
from shared.settings import Settings
from shared.storage import open_storage
from tests.shared.pipeline.conftest import write_requests
from workers.cli import main

PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def registered(settings: Settings) -> list[str]:
    return sorted(entry.run_id for entry in registry(settings).entries())


def brokered(settings: Settings, inputs: Path, outputs: Path) -> Settings:
    """The same settings as a worker with a broker would have them, allowing two folders."""
    return settings.model_copy(update={
        "broker_url": "redis://127.0.0.1:6379/0",
        "input_prefixes": [str(inputs)], "output_prefixes": [str(outputs)],
    })


def no_op(*_: object) -> None:
    return None


# ---- what a caller may name ------------------------------------------------------------


@pytest.mark.parametrize("source", ["/etc/passwd", "/proc/self/environ"])
def test_system_files_are_refused_before_anything_is_claimed(harness, tmp_path: Path,
                                                             source: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(AccessError, match="a protected location"):
        register_run(harness.settings, RunSpec(input_uri=source, output_uri=str(out)))
    assert registered(harness.settings) == [] and not out.exists()


def test_the_secrets_dir_is_refused(harness, tmp_path: Path, env) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SHARDLINE_API_KEY").write_text('{"key": "AIza-secret"}\n')
    env(SHARDLINE_SECRETS_DIR=str(secrets))
    spec = RunSpec(input_uri=str(secrets / "SHARDLINE_API_KEY"), output_uri=str(tmp_path / "o"))
    with pytest.raises(AccessError, match="a protected location"):
        register_run(harness.settings, spec)


def test_a_brokered_worker_allows_only_its_prefixes(harness, tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    source = write_requests(inbox / "a.jsonl", 3)
    private = write_requests(tmp_path / "private.jsonl", 3)
    (inbox / "link.jsonl").symlink_to(private)
    closed = brokered(harness.settings, inbox, outbox).model_copy(
        update={"input_prefixes": [], "output_prefixes": []})
    with pytest.raises(AccessError, match="SHARDLINE_INPUT_PREFIXES"):
        register_run(closed, RunSpec(input_uri=str(source), output_uri=str(outbox / "r")))
    worker = brokered(harness.settings, inbox, outbox)
    for refused in (str(private), f"{inbox}/../private.jsonl", str(inbox / "link.jsonl")):
        with pytest.raises(AccessError, match="not under an allowed input prefix"):
            register_run(worker, RunSpec(input_uri=refused, output_uri=str(outbox / "r")))
    with pytest.raises(AccessError, match="not under an allowed output prefix"):
        register_run(worker, RunSpec(input_uri=str(source), output_uri=str(tmp_path / "x")))
    assert registered(worker) == []
    started = register_run(worker, RunSpec(input_uri=str(source), output_uri=str(outbox / "r")))
    assert registered(worker) == [started.run_id]


def test_a_non_empty_output_is_refused_and_left_alone(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("last month's results\n")
    with pytest.raises(AccessError, match="not empty"):
        register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=str(out)))
    assert (out / "results.jsonl").read_text() == "last month's results\n"
    assert [p.name for p in out.iterdir()] == ["results.jsonl"]
    assert registered(harness.settings) == []


def test_no_output_inside_or_around_another_run_or_the_state(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    first = register_run(harness.settings,
                         RunSpec(input_uri=str(source), output_uri=str(tmp_path / "out" / "a")))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*"))
    refusals = {
        tmp_path / "out" / "a" / "sub": "inside another run's output",
        tmp_path / "out" / "a" / "_shardline" / "shards": "_shardline",
        tmp_path / "out": "not empty",
        tmp_path / "state" / "runs": "overlaps Shardline's state",
        tmp_path: "overlaps Shardline's state",
    }
    for output, reason in refusals.items():
        with pytest.raises(AccessError, match=reason):
            register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=str(output)))
    assert registered(harness.settings) == [first.run_id]
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*")) == before


# ---- inputs that are not JSONL ----------------------------------------------------------


def test_a_file_that_is_not_jsonl_is_refused_at_start(harness, tmp_path: Path) -> None:
    source = tmp_path / "passwd"
    source.write_text(PASSWD)
    with pytest.raises(InputFileError, match=r"passwd: not JSONL"):
        register_run(harness.settings, RunSpec(input_uri=str(source),
                                               output_uri=str(tmp_path / "o")))
    assert registered(harness.settings) == [] and not (tmp_path / "o").exists()


def test_a_file_that_became_non_jsonl_is_refused_by_the_plan(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    started = register_run(harness.settings, RunSpec(input_uri=str(source),
                                                     output_uri=str(tmp_path / "o")))
    shutil.copyfile("/etc/passwd", source) if Path("/etc/passwd").is_file() else (
        source.write_text(PASSWD))
    ctx = RunContext(harness.settings, started.run_id, started.output_uri)
    with pytest.raises(InputFileError, match="not JSONL"):
        plan_run(ctx)
    out = tmp_path / "o"
    assert not (out / layout.REJECTED).exists() and not (out / layout.PLAN_REJECTED).exists()
    assert not (out / layout.PLAN).exists()


def test_the_plan_checks_the_input_with_the_worker_s_own_policy(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    started = register_run(harness.settings, RunSpec(input_uri=str(source),
                                                     output_uri=str(tmp_path / "out" / "r")))
    worker = brokered(harness.settings, tmp_path / "elsewhere", tmp_path / "out")
    with pytest.raises(AccessError, match="not under an allowed input prefix"):
        plan_run(RunContext(worker, started.run_id, started.output_uri))
    assert not (tmp_path / "out" / "r" / layout.PLAN).exists()


# ---- every task acts on its own run only --------------------------------------------------


def test_a_task_for_another_run_id_touches_nothing(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    started = register_run(harness.settings, RunSpec(input_uri=str(source),
                                                     output_uri=str(tmp_path / "o")))
    before = sorted((tmp_path / "o").rglob("*"))
    for forged in ("k-0000000000", "", started.run_id + "x"):
        with pytest.raises(AccessError, match="does not hold this run"):
            RunContext(harness.settings, forged, started.output_uri).verify()
    RunContext(harness.settings, started.run_id, started.output_uri).verify()
    assert sorted((tmp_path / "o").rglob("*")) == before


def test_cli_cancel_checks_the_run_too(harness, tmp_path: Path, env) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    out = tmp_path / "o"
    started = register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=str(out)))
    env(SHARDLINE_STATE_URI=harness.settings.state_uri,
        SHARDLINE_API_KEY=harness.settings.api_key.get_secret_value())
    # The registry entry says the run is at `out`, but `out` now holds someone else's run.
    manifest = orjson.loads((out / layout.MANIFEST).read_bytes())
    (out / layout.MANIFEST).write_bytes(orjson.dumps({**manifest, "run_id": "k-other"}))
    assert main(["cancel", started.run_id]) == 2
    assert not (out / layout.CANCEL_MARKER).exists()


# ---- idempotency keys per client ------------------------------------------------------------


def test_the_same_key_under_two_clients_makes_two_runs(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    runs = [
        register_run(harness.settings, RunSpec(
            input_uri=str(source), output_uri=str(tmp_path / client), client=client,
            idempotency_key="nightly-2026-11-26"))
        for client in ("billing", "search")
    ]
    assert all(run.created for run in runs) and runs[0].run_id != runs[1].run_id
    assert runs[0].run_id == run_id_for_key("nightly-2026-11-26", "billing")


def test_a_key_reused_for_another_spec_names_no_value(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    key = "nightly-secret-project-7"
    first = register_run(harness.settings, RunSpec(
        input_uri=str(source), output_uri=str(tmp_path / "victim-output"), client="billing",
        idempotency_key=key))
    with pytest.raises(SpecError, match="already used by this client") as caught:
        register_run(harness.settings, RunSpec(
            input_uri=str(source), output_uri=str(tmp_path / "mine"), client="billing",
            idempotency_key=key))
    message = str(caught.value)
    for value in (key, "victim-output", first.run_id, str(tmp_path), "billing"):
        assert value not in message


def test_the_default_client_keeps_the_ids_keys_had_before_clients() -> None:
    legacy = "k-" + hashlib.sha256(b"nightly-2026-11-26").hexdigest()[:20]
    assert run_id_for_key("nightly-2026-11-26") == legacy
    assert run_id_for_key("nightly-2026-11-26", "default") == legacy
    assert run_id_for_key("nightly-2026-11-26", "billing") != legacy


@pytest.mark.parametrize("client", ["", "a b", "-lead", "x" * 65, "name\n", "caf\u00e9"])
def test_client_names_are_short_and_plain(client: str) -> None:
    with pytest.raises(ValueError, match="client"):
        RunSpec(input_uri="/in.jsonl", output_uri="/out", client=client)


# ---- a registry object that is not a run entry --------------------------------------------


def test_list_and_the_reconciler_skip_what_they_cannot_read(harness, tmp_path: Path, env,
                                                            capsys) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    started = register_run(harness.settings, RunSpec(input_uri=str(source),
                                                     output_uri=str(tmp_path / "o")))
    state = open_storage(harness.settings.state_uri)
    state.write_bytes("runs/_shardline/run.json", b'{"run_id": "x"}')  # an output, once
    state.write_bytes("runs/damaged.json", b'{"run_id": 7}')
    report = reconcile(harness.settings, restart_chain=no_op, restart_merge=no_op,
                       restart_plan=no_op)
    assert sorted(report.skipped_entries) == ["runs/_shardline/run.json", "runs/damaged.json"]
    assert report.runs_checked == 1 and report.unreadable == []
    env(SHARDLINE_STATE_URI=harness.settings.state_uri)
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert started.run_id in out and "skipped 2 registry object(s)" in err


def test_the_reconciler_leaves_alone_a_run_whose_output_holds_another(harness,
                                                                       tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 3)
    started = register_run(harness.settings, RunSpec(input_uri=str(source),
                                                     output_uri=str(tmp_path / "o")))
    manifest = tmp_path / "o" / layout.MANIFEST
    manifest.write_bytes(orjson.dumps({**orjson.loads(manifest.read_bytes()),
                                       "run_id": "k-other", "created_at": "2000-01-01T00:00:00Z"}))
    plans: list[str] = []
    report = reconcile(harness.settings, restart_chain=no_op, restart_merge=no_op,
                       restart_plan=lambda run, out: plans.append(run))
    assert report.refused == [started.run_id] and plans == []


def test_an_idempotency_key_cannot_end_in_a_newline() -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        RunSpec(input_uri="/in.jsonl", output_uri="/out", idempotency_key="nightly\n")


@pytest.mark.parametrize("source", ["/etc/passwd", "/proc/self/environ"])
def test_shardline_run_refuses_system_files_with_exit_2(tmp_path: Path, env, capsys,
                                                        source: str) -> None:
    env(SHARDLINE_STATE_URI=str(tmp_path / "state"), SHARDLINE_API_KEY="unused")
    assert main(["run", source, "--out", str(tmp_path / "x")]) == 2
    _, err = capsys.readouterr()
    # (the CLI resolves its paths first: /proc/self is this process's /proc/<pid>)
    assert err.startswith(f"shardline: input_uri /{source.split('/')[1]}/")
    assert err.strip().endswith(": a protected location (system files, secrets, Shardline's "
                                "state or installation) no setting allows")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "state").exists()
