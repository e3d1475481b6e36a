"""The contract for other services: ``shardline.start_run`` by name, with only Celery.

Every client here is a separate Python process in a venv of its own, made once per test
session with nothing but the README's ``pip install`` line (from the package index), so it
cannot import ``workers``, ``shared`` or ``emulator`` (an import hook checks that too), talking
to a real worker process over real Redis. The first client is the README's example, run as
written but for its addresses.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.pipeline.start import register_run
from shared.run import layout
from shared.run.registry import RunRegistry
from shared.run.spec import RunSpec, run_spec_schema
from shared.settings import Settings
from shared.storage import open_storage
from tests.fixtures.emulator import EmulatorProcess, start_emulator_process
from tests.fixtures.services import (
    WorkerProcess,
    pipeline_environment,
    purge_queue,
    start_worker,
)
from tests.integration.conftest import API_KEY, check_output, shardline, wait_summary, write_input

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINES = 200

#: Prepended to every client: proof that the caller needs nothing of Shardline's code.
NO_SHARDLINE_IMPORTS = '''
import sys

class _NoShardline:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("workers", "shared", "emulator"):
            raise ImportError(f"a client service must not need {name}")
        return None

sys.meta_path.insert(0, _NoShardline())
'''
CHECK_NO_SHARDLINE = '''
assert not {m.split(".")[0] for m in sys.modules} & {"workers", "shared", "emulator"}
'''


@dataclass
class Service:
    redis_url: str
    env: dict[str, str]
    tmp: Path
    emulator: EmulatorProcess
    worker: WorkerProcess


@pytest.fixture(scope="module")
def service(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One worker process on Redis and the emulator, shared by this module's tests."""
    tmp = tmp_path_factory.mktemp("contract")
    purge_queue(redis_url)
    emulator = start_emulator_process("--api-key", API_KEY, "--time-scale", "600")
    env = pipeline_environment(emulator.handle.base_url, API_KEY, tmp, broker=redis_url)
    worker = start_worker(env, tmp / "worker.log")
    try:
        yield Service(redis_url, env, tmp, emulator, worker)
    finally:
        worker.stop()
        emulator.stop()


def _section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("### Other services enqueue runs", 1)[1].split("\n## ", 1)[0]


def readme_example() -> str:
    """The Python block of the README's "Other services enqueue runs" section."""
    return _section().split("```python\n", 1)[1].split("```", 1)[0]


def readme_install() -> list[str]:
    """The arguments of the section's ``pip install`` line."""
    [line] = [line for line in _section().splitlines() if line.startswith("pip install ")]
    return shlex.split(line)[2:]


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with only what the README tells other services to install (once a session)."""
    home = tmp_path_factory.mktemp("client-venv")
    venv.create(home, with_pip=True, symlinks=True)
    python = home / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *readme_install()],
        cwd=home, capture_output=True, text=True, timeout=600, check=False,
    )
    if installed.returncode != 0:
        message = f"cannot install the README's client packages:\n{installed.stderr}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def run_client(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in the client venv, outside the repository, with no Shardline settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHARDLINE_", "GEMINI_", "AWS_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(python), "-c", NO_SHARDLINE_IMPORTS + code + CHECK_NO_SHARDLINE],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the README example no longer holds {old!r}"
        text = text.replace(old, new)
    return text


def test_the_client_venv_holds_no_shardline(client_python: Path) -> None:
    probe = "import importlib.util as u; print([u.find_spec(m) is None for m in "\
            "('workers', 'shared', 'emulator', 'celery', 'redis', 'packaging')])"
    done = subprocess.run([str(client_python), "-c", probe], cwd=client_python.parents[1],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[True, True, True, False, False, False]"


def test_the_readme_example_runs_and_the_same_key_starts_one_run(
    service: Service, client_python: Path
) -> None:
    source, out = service.tmp / "readme.jsonl", service.tmp / "readme-out"
    expected = write_input(source, LINES)
    client = substitute(readme_example(), {
        "redis://redis:6379/0": service.redis_url,
        "s3://bucket/in/2026-11-26.jsonl": str(source),
        "s3://bucket/out/2026-11-26": str(out),
    })

    first = run_client(client_python, client, service.tmp).stdout.strip()
    second = run_client(client_python, client, service.tmp).stdout.strip()

    assert first == second, "the same idempotency key started two runs"
    summary = wait_summary(out, timeout=120)
    assert summary.run_id == first
    check_output(out, expected)
    runs = [e for e in RunRegistry(open_storage(service.env["SHARDLINE_STATE_URI"])).entries()
            if e.output_uri == str(out)]
    assert [e.run_id for e in runs] == [first]
    jobs = [j for j in service.emulator.handle.jobs()
            if j["displayName"].startswith(f"shardline-{first}-")]
    assert len(jobs) == summary.shards == 1


_TWICE_AT_ONCE = '''
import ast
import json
from celery import Celery

app = Celery(broker={broker!r}, backend={broker!r})
spec = {spec!r}
pending = [app.send_task("shardline.start_run", [spec], queue="shardline") for _ in range(2)]
pending.append(app.send_task("shardline.start_run", [json.dumps(spec)], queue="shardline"))
print(json.dumps([result.get(timeout=60) for result in pending]))
'''


def test_the_same_key_sent_at_once_starts_one_run(service: Service, client_python: Path) -> None:
    source, out = service.tmp / "twice.jsonl", service.tmp / "twice-out"
    expected = write_input(source, LINES)
    spec = {"input_uri": str(source), "output_uri": str(out), "idempotency_key": "twice-1",
            "options": {"shard_max_requests": 100}, "labels": {"team": "search"}}

    answers = json.loads(run_client(
        client_python, _TWICE_AT_ONCE.format(broker=service.redis_url, spec=spec), service.tmp
    ).stdout)

    assert len({a["run_id"] for a in answers}) == 1
    assert sorted(a["created"] for a in answers) == [False, False, True]
    summary = wait_summary(out, timeout=120)
    check_output(out, expected)
    assert summary.shards == 2
    jobs = [j for j in service.emulator.handle.jobs()
            if j["displayName"].startswith(f"shardline-{answers[0]['run_id']}-")]
    names = [j["displayName"] for j in jobs]
    assert len(names) == len(set(names)) == 2, "a shard's job was created twice"


_REFUSED = '''
import ast
import json
from celery import Celery

app = Celery(broker={broker!r}, backend={broker!r})
answers = []
for spec in {specs!r}:
    result = app.send_task("shardline.start_run", [spec], queue="shardline")
    try:
        answers.append({{"ok": result.get(timeout=60)}})
    except Exception as exc:
        answers.append({{"error": type(exc).__name__, "message": str(exc)}})
print(json.dumps(answers))
'''


def test_a_refused_payload_answers_a_readable_error(
    service: Service, client_python: Path
) -> None:
    source = service.tmp / "refused.jsonl"
    write_input(source, 5)
    good = {"input_uri": str(source), "output_uri": str(service.tmp / "refused-out"),
            "idempotency_key": "refused-1"}
    specs: list[Any] = [
        {"input_uri": str(source)},  # no output
        {**good, "api_key": "AIzaFAKE-in-payload"},  # unknown field: keys never travel here
        {**good, "input_uri": str(service.tmp / "missing.jsonl")},
        good,
        {**good, "model": "gemini-2.5-pro"},  # the same key for another spec
    ]

    answers = json.loads(run_client(
        client_python, _REFUSED.format(broker=service.redis_url, specs=specs), service.tmp
    ).stdout)

    no_output, extra, missing, ok, reused = answers
    assert no_output == {"error": "SpecError",
                         "message": "invalid RunSpec: output_uri: Field required"}
    assert extra["error"] == "SpecError" and "api_key: Extra inputs" in extra["message"]
    assert "AIzaFAKE" not in json.dumps(answers), "an error echoed a payload value"
    assert missing == {"error": "InputFileError",  # text, not a tuple of arguments
                       "message": f"{service.tmp / 'missing.jsonl'}: no such file or object"}
    assert ok["ok"]["created"] is True
    assert reused["error"] == "SpecError" and "already used by this client" in reused["message"]
    assert "refused-1" not in reused["message"] and "refused-out" not in reused["message"]
    wait_summary(service.tmp / "refused-out", timeout=120)
    # The caller's mistakes are warnings in the worker's log, not task failures.
    log = service.worker.log()
    [refusal] = [line for line in log.splitlines()
                 if "start_run refused: SpecError: invalid RunSpec: output_uri: Field" in line]
    assert "WARNING" in refusal
    assert "start_run refused: InputFileError: " in log
    assert "raised unexpected" not in log
    assert "Traceback" not in log and "AIzaFAKE" not in log


_TASKS = '''
import json
from celery import Celery

app = Celery(broker={broker!r}, backend={broker!r})
answers = []
for name, args in {calls!r}:
    try:
        answers.append({{"ok": app.send_task(name, args, queue="shardline").get(timeout=60)}})
    except Exception as exc:
        answers.append({{"error": type(exc).__name__, "message": str(exc)}})
print(json.dumps(answers))
'''


def test_a_caller_gets_no_file_and_no_other_run(service: Service, client_python: Path) -> None:
    """What any holder of the broker URL tries: system files, a file that is not JSONL, an
    output that holds data, and steps sent for a run id its output does not hold."""
    tmp = service.tmp
    (tmp / "notes.txt").write_text("root:x:0:0:root:/root:/bin/bash\n" * 3)
    (tmp / "full").mkdir()
    (tmp / "full" / "results.jsonl").write_text("keep me\n")
    source = tmp / "victim.jsonl"
    write_input(source, 5)
    settings = Settings(state_uri=service.env["SHARDLINE_STATE_URI"],
                        broker_url=service.redis_url,
                        input_prefixes=service.env["SHARDLINE_INPUT_PREFIXES"],
                        output_prefixes=service.env["SHARDLINE_OUTPUT_PREFIXES"])
    victim = register_run(settings, RunSpec(input_uri=str(source),
                                            output_uri=str(tmp / "victim-out")))
    out = str(tmp / "victim-out")

    def start(input_uri: str, output: str) -> list[Any]:
        return ["shardline.start_run", [{"input_uri": input_uri, "output_uri": output}]]

    calls = [
        start("/etc/passwd", str(tmp / "p1")),
        start("/proc/self/environ", str(tmp / "p2")),
        start(str(tmp / "notes.txt"), str(tmp / "p3")),
        start(str(source), str(tmp / "full")),
        start(str(source), f"{out}/_shardline/shards"),
        ["shardline.cancel", ["k-forged", out]],
        ["shardline.plan", ["k-forged", out]],
        ["shardline.cancel", [victim.run_id, out]],
    ]
    answers = json.loads(run_client(
        client_python,
        _TASKS.format(broker=service.redis_url, calls=calls), tmp).stdout)

    *refused, cancelled = answers
    assert [a.get("error") for a in refused] == [
        "AccessError", "AccessError", "InputFileError", "AccessError", "AccessError",
        "AccessError", "AccessError"], refused
    assert "not JSONL" in refused[2]["message"]
    assert all("does not hold this run" in a["message"] for a in refused[5:])
    assert cancelled == {"ok": {"run_id": victim.run_id, "cancelled_jobs": 0}}
    assert not any((tmp / name).exists() for name in ("p1", "p2", "p3"))
    assert (tmp / "full" / "results.jsonl").read_text() == "keep me\n"
    assert not (tmp / "victim-out" / layout.PLAN).exists()


def test_the_schema_command_prints_the_contract(tmp_path: Path) -> None:
    printed = json.loads(shardline("schema", env={"SHARDLINE_STATE_URI": str(tmp_path)}).stdout)

    assert printed == run_spec_schema()
    assert printed["title"] == "RunSpec" and printed["$id"].endswith("/run-spec.json")
    assert set(printed["required"]) == {"input_uri", "output_uri"}
    assert printed["additionalProperties"] is False
    example = readme_example()
    payload = example[example.index("[{") + 1: example.index("}]") + 1]
    spec = RunSpec.model_validate(ast.literal_eval(payload))  # the README payload as written
    assert spec.idempotency_key == "nightly-2026-11-26"
