"""The contract for other services: ``shardline.start_run`` by name, with only ``celery``.

Every client here is a separate Python process that cannot import ``workers``, ``shared`` or
``emulator`` (an import hook refuses them), talking to a real worker process over real Redis.
The first client is the README's example, run as written but for its addresses.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.run.registry import RunRegistry
from shared.run.spec import RunSpec, run_spec_schema
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


def readme_example() -> str:
    """The Python block of the README's "Other services enqueue runs" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Other services enqueue runs", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_client(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter outside the repository, with no Shardline settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHARDLINE_", "GEMINI_", "AWS_"))}
    done = subprocess.run(
        [sys.executable, "-c", NO_SHARDLINE_IMPORTS + code + CHECK_NO_SHARDLINE],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the README example no longer holds {old!r}"
        text = text.replace(old, new)
    return text


def test_the_readme_example_runs_and_the_same_key_starts_one_run(service: Service) -> None:
    source, out = service.tmp / "readme.jsonl", service.tmp / "readme-out"
    expected = write_input(source, LINES)
    client = substitute(readme_example(), {
        "redis://redis:6379/0": service.redis_url,
        "s3://bucket/in/2026-11-26.jsonl": str(source),
        "s3://bucket/out/2026-11-26": str(out),
    })

    first = run_client(client, service.tmp).stdout.strip()
    second = run_client(client, service.tmp).stdout.strip()

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


def test_the_same_key_sent_at_once_starts_one_run(service: Service) -> None:
    source, out = service.tmp / "twice.jsonl", service.tmp / "twice-out"
    expected = write_input(source, LINES)
    spec = {"input_uri": str(source), "output_uri": str(out), "idempotency_key": "twice-1",
            "options": {"shard_max_requests": 100}, "labels": {"team": "search"}}

    answers = json.loads(run_client(
        _TWICE_AT_ONCE.format(broker=service.redis_url, spec=spec), service.tmp).stdout)

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


def test_a_refused_payload_answers_a_readable_error(service: Service) -> None:
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
        _REFUSED.format(broker=service.redis_url, specs=specs), service.tmp).stdout)

    no_output, extra, missing, ok, reused = answers
    assert no_output == {"error": "SpecError",
                         "message": "invalid RunSpec: output_uri: Field required"}
    assert extra["error"] == "SpecError" and "api_key: Extra inputs" in extra["message"]
    assert "AIzaFAKE" not in json.dumps(answers), "an error echoed a payload value"
    assert "missing.jsonl" in missing["message"]
    assert ok["ok"]["created"] is True
    assert reused["error"] == "SpecError" and "refused-1" in reused["message"]
    wait_summary(service.tmp / "refused-out", timeout=120)


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
