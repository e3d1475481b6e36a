"""deploy/Dockerfile and its ignore file: stages, user, secrets, and what the commands name."""

from __future__ import annotations

import os
import re
import shlex
import tomllib

from shared import names
from tests.deploy._deploy import DEPLOY, REPO
from tests.deploy._dockerfile import DockerIgnore, stages

DOCKERFILE = DEPLOY / "Dockerfile"
IGNORE = DEPLOY / "Dockerfile.dockerignore"
SECRET_WORDS = re.compile(r"(API_KEY|SECRET|PASSWORD|TOKEN|BASIC_AUTH)", re.IGNORECASE)


def _final():
    _args, all_stages = stages(DOCKERFILE)
    return all_stages[-1]


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_multi_stage_on_slim_python_311_or_newer():
    _args, all_stages = stages(DOCKERFILE)
    assert len(all_stages) >= 2
    for stage in all_stages:
        match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(?:-\w+)?", stage.base)
        assert match, f"not a slim Python base: {stage.base}"
        assert (int(match.group(1)), int(match.group(2))) >= (3, 11)
    final = all_stages[-1]
    copies_from_build = [
        i for i in final.all("COPY") if i.args.startswith("--from=")
    ]
    assert copies_from_build, "the runtime stage should take the venv from the build stage"
    assert not any("pip install" in i.args for i in final.all("RUN")), "install in the build stage"


def test_installs_the_project_with_the_flower_extra():
    _args, all_stages = stages(DOCKERFILE)
    runs = " ".join(i.args for s in all_stages for i in s.all("RUN"))
    assert re.search(r"pip install \"?\.\[flower\]\"?", runs)
    assert "flower" in _pyproject()["project"]["optional-dependencies"]


def test_runs_as_a_non_root_user():
    final = _final()
    users = final.all("USER")
    assert users, "the runtime stage must set USER"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    last_user = users[-1].line
    for keyword in ("ENTRYPOINT", "CMD"):
        assert all(i.line > last_user for i in final.all(keyword)), f"{keyword} before USER"


def test_no_secret_is_baked_in():
    _args, all_stages = stages(DOCKERFILE)
    for stage in all_stages:
        for instruction in stage.all("ENV") + stage.all("ARG") + stage.all("LABEL"):
            assert not SECRET_WORDS.search(instruction.args), instruction
    text = DOCKERFILE.read_text()
    assert not re.search(r"AIza[0-9A-Za-z_-]{30,}", text)


def test_copy_sources_exist_and_survive_the_ignore_file():
    ignore = DockerIgnore(IGNORE)
    _args, all_stages = stages(DOCKERFILE)
    for stage in all_stages:
        for instruction in stage.all("COPY"):
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            if instruction.args.startswith("--from="):
                continue
            for source in words[:-1]:
                matches = sorted(REPO.glob(source))
                if "[" not in source:  # a glob may match nothing (the optional README)
                    assert matches, f"COPY {source}: no such path in the build context"
                for match in matches:
                    rel = match.relative_to(REPO).as_posix()
                    assert not ignore.excluded(rel), f"COPY {rel} but the ignore file drops it"


def test_ignore_file_keeps_the_context_small_and_secret_free():
    ignore = DockerIgnore(IGNORE)
    for kept in ("pyproject.toml", "shared/settings.py", "workers/cli.py", "emulator/app.py",
                 "deploy/docker-entrypoint.sh"):
        assert not ignore.excluded(kept), kept
    for dropped in (".venv/bin/python", "tests/conftest.py", ".git/config",
                    "deploy/secrets/SHARDLINE_API_KEY", "deploy/shardline.env", "deploy/.env",
                    "shared/__pycache__/settings.cpython-311.pyc", "benchmarks/x.py",
                    "shared/.env", "shardline.egg-info/PKG-INFO"):
        assert ignore.excluded(dropped), dropped


def test_a_plain_dockerignore_in_deploy_would_be_ignored_so_there_is_none():
    # The context is the repository root: Docker reads <root>/.dockerignore or, with
    # BuildKit, deploy/Dockerfile.dockerignore; deploy/.dockerignore would silently do nothing.
    assert IGNORE.is_file()
    assert not (DEPLOY / ".dockerignore").exists()


def test_entrypoint_is_the_copied_script():
    final = _final()
    (entrypoint,) = final.all("ENTRYPOINT")
    argv = entrypoint.exec_form()
    assert argv == ["shardline-entrypoint"]
    copies = [i.args.split() for i in final.all("COPY")]
    assert ["deploy/docker-entrypoint.sh", "/usr/local/bin/shardline-entrypoint"] in copies
    script = DEPLOY / "docker-entrypoint.sh"
    assert os.access(script, os.X_OK), "git must keep the entrypoint executable"
    assert script.read_text().startswith("#!/bin/sh\n")


def test_cmd_starts_a_worker_of_the_shardline_app_and_queue():
    final = _final()
    (cmd,) = final.all("CMD")
    argv = cmd.exec_form()
    assert argv is not None, "CMD in exec form, so SIGTERM reaches Celery"
    assert argv[:4] == ["celery", "-A", "workers", "worker"]
    assert (REPO / "workers" / "__init__.py").is_file()
    assert f"--queues={names.QUEUE}" in argv
    assert "shardline" in _pyproject()["project"]["scripts"]  # the CLI the image also runs


def test_healthcheck_pings_the_node_the_cmd_names():
    final = _final()
    (health,) = final.all("HEALTHCHECK")
    options, _, command = health.args.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = shlex.split(command)
    assert argv[:5] == ["celery", "-A", "workers", "inspect", "ping"]
    destination = argv[argv.index("--destination") + 1]
    (cmd,) = final.all("CMD")
    hostname = next(a for a in cmd.exec_form() or [] if a.startswith("--hostname="))
    node = hostname.removeprefix("--hostname=")
    assert destination.replace("${HOSTNAME}", "%h") == node
