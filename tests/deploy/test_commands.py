"""Every command deploy/ runs (Dockerfile, compose, Kubernetes, systemd) is accepted by the
real CLI it names: Celery's (with the ``workers`` app), Flower's options, ``shardline``."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

import pytest

from tests.deploy._deploy import DEPLOY, K8S, REPO, SYSTEMD, unit_values, yaml_doc, yaml_docs
from tests.deploy._dockerfile import stages

HOST = "host-1"


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]


def _normalise(where: str, argv: list[str]) -> Command:
    argv = [a.replace("$${HOSTNAME}", HOST).replace("${HOSTNAME}", HOST)
            .replace("$HOSTNAME", HOST).replace("%H", HOST).replace("%i", "1")
            for a in argv]
    while argv and re.match(r"^\d?>", argv[-1]):  # drop trailing redirections
        argv.pop()
    argv[0] = argv[0].rsplit("/", 1)[-1]
    return Command(where, tuple(argv))


def _shell(text: str) -> list[str]:
    return shlex.split(text)


@cache
def commands() -> tuple[Command, ...]:
    found: list[Command] = []
    _args, all_stages = stages(DEPLOY / "Dockerfile")
    final = all_stages[-1]
    found.append(_normalise("Dockerfile CMD", final.all("CMD")[0].exec_form() or []))
    health = final.all("HEALTHCHECK")[0].args.partition(" CMD ")[2]
    found.append(_normalise("Dockerfile HEALTHCHECK", _shell(health.replace("|| exit 1", ""))))

    compose = yaml_doc(DEPLOY / "compose.yaml")
    for name, service in compose["services"].items():
        if "command" in service:
            found.append(_normalise(f"compose {name}", list(service["command"])))
        test = service["healthcheck"]["test"]
        argv = _shell(test[1]) if test[0] == "CMD-SHELL" else list(test[1:])
        found.append(_normalise(f"compose {name} healthcheck", argv))

    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml_docs(path):
            if doc.get("kind") != "Deployment":
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                where = f"k8s {doc['metadata']['name']}"
                found.append(_normalise(where, list(c["args"])))
                probe = c.get("livenessProbe", {}).get("exec")
                if probe:
                    command = probe["command"]
                    argv = _shell(command[2]) if command[:2] == ["sh", "-c"] else command
                    found.append(_normalise(f"{where} liveness", argv))

    for unit in sorted(SYSTEMD.glob("*.service")):
        for line in unit_values(unit, "Service", "ExecStart"):
            found.append(_normalise(f"systemd {unit.name}", _shell(line)))
    return tuple(found)


def celery_commands() -> list[Command]:
    return [c for c in commands() if c.argv[0] == "celery"]


def test_commands_were_found():
    wheres = {c.where.split()[0] for c in commands()}
    assert wheres == {"Dockerfile", "compose", "k8s", "systemd"}
    assert len(celery_commands()) >= 12


def test_celery_commands_use_the_shardline_app():
    for command in celery_commands():
        assert command.argv[1:3] == ("-A", "workers"), command


@cache
def celery_accepts(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    # Click parses every option before acting on --help: an unknown one fails with exit 2.
    return subprocess.run([sys.executable, "-m", "celery", *argv[1:], "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("subcommand", ["worker", "beat", "inspect"])
def test_celery_accepts_every_option(subcommand: str):
    checked = 0
    for command in celery_commands():
        if command.argv[3] != subcommand:
            continue
        result = celery_accepts(command.argv)
        assert result.returncode == 0, f"{command.where}: {' '.join(command.argv)}\n{result.stderr}"
        checked += 1
    assert checked


def test_an_unknown_celery_option_is_caught():
    result = celery_accepts(("celery", "-A", "workers", "worker", "--queuez=shardline"))
    assert result.returncode != 0


def flower_option_names() -> set[str]:
    options = pytest.importorskip("flower.options", reason="Flower is the flower extra")
    # tornado keeps names with dashes and accepts --name_with_underscores as the same option.
    return {name.replace("-", "_") for name in options.options._options}


def test_flower_accepts_every_option():
    known = flower_option_names()
    flowers = [c for c in celery_commands() if c.argv[3] == "flower"]
    assert flowers
    for command in flowers:
        for arg in command.argv[4:]:
            assert arg.startswith("--"), f"{command.where}: {arg}"
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            assert name in known, f"{command.where}: Flower has no option {arg}"
    assert "basic_authx" not in known


def test_worker_commands_agree_everywhere():
    """Pool, concurrency and queue are the same in the image, compose, Kubernetes, systemd."""
    shapes = {}
    for command in celery_commands():
        if command.argv[3] == "worker":
            shapes[command.where] = sorted(a for a in command.argv[4:]
                                           if not a.startswith("--hostname="))
    assert len(shapes) == 4, shapes
    assert len({tuple(v) for v in shapes.values()}) == 1, shapes


def test_shardline_commands_parse():
    from emulator.cli import build_parser as emulator_parser
    from emulator.cli import config_from_args
    from workers.cli import build_parser

    ours = [c for c in commands() if c.argv[0] == "shardline"]
    assert ours
    for command in ours:
        if command.argv[1] == "emulator":
            config = config_from_args(emulator_parser().parse_args(list(command.argv[2:])))
            assert config.host == "0.0.0.0", "reachable from the other containers"
        else:
            build_parser().parse_args(list(command.argv[1:]))


def test_every_command_is_known():
    for command in commands():
        assert command.argv[0] in {"celery", "shardline", "redis-server", "redis-cli",
                                   "python"}, command
