"""deploy/systemd: units verified by systemd-analyze when present, and their invariants."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy._deploy import (
    SYSTEMD,
    WORKER_STOP_GRACE_SECONDS,
    parse_duration,
    unit_entries,
    unit_values,
)

VENV = "/opt/shardline/venv"
WORKER = SYSTEMD / "shardline-worker@.service"
BEAT = SYSTEMD / "shardline-beat.service"
FLOWER = SYSTEMD / "shardline-flower.service"
TARGET = SYSTEMD / "shardline.target"
SERVICES = (WORKER, BEAT, FLOWER)


def one(path: Path, key: str, section: str = "Service") -> str:
    values = unit_values(path, section, key)
    assert len(values) == 1, f"{path.name}: {key} set {len(values)} times"
    return values[0]


def exec_start(path: Path) -> list[str]:
    return shlex.split(one(path, "ExecStart"))


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_runs_the_celery_app_from_the_venv(unit: Path):
    argv = exec_start(unit)
    assert argv[0] == f"{VENV}/bin/celery"
    assert argv[1:3] == ["-A", "workers"]
    assert argv[3] == {WORKER: "worker", BEAT: "beat", FLOWER: "flower"}[unit]


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_stops_and_restarts_sanely(unit: Path):
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "KillSignal") == "SIGTERM"
    assert parse_duration(one(unit, "TimeoutStopSec")) >= 10
    assert one(unit, "User") == "shardline"
    assert "/etc/shardline/shardline.env" in unit_values(unit, "Service", "EnvironmentFile")
    assert unit_values(unit, "Install", "WantedBy") == ["shardline.target"]
    assert unit_values(unit, "Unit", "PartOf") == ["shardline.target"]


def test_worker_waits_for_acks_late_tasks_and_kills_only_the_main_process_first():
    assert parse_duration(one(WORKER, "TimeoutStopSec")) == WORKER_STOP_GRACE_SECONDS
    assert one(WORKER, "KillMode") == "mixed"
    argv = exec_start(WORKER)
    node = next(a for a in argv if a.startswith("--hostname="))
    assert "%i" in node, "instances need distinct node names"


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_hardened(unit: Path):
    assert one(unit, "NoNewPrivileges") == "yes"
    assert one(unit, "ProtectSystem") == "strict"
    assert one(unit, "PrivateTmp") == "yes"
    writable = " ".join(unit_values(unit, "Service", "ReadWritePaths")).split()
    assert "/var/lib/shardline" in writable
    assert one(unit, "WorkingDirectory") in writable


def test_only_the_worker_gets_the_api_key_as_a_credential():
    (credential,) = unit_values(WORKER, "Service", "LoadCredential")
    name, _, source = credential.partition(":")
    assert name == "SHARDLINE_API_KEY"
    assert source.startswith("/etc/shardline/")
    assert "SHARDLINE_SECRETS_DIR=%d" in unit_values(WORKER, "Service", "Environment")
    for unit in (BEAT, FLOWER):
        assert not unit_values(unit, "Service", "LoadCredential"), unit.name
        assert "SHARDLINE_API_KEY" not in unit.read_text(), unit.name


def test_flower_takes_its_password_from_a_root_only_file_and_stays_local():
    files = unit_values(FLOWER, "Service", "EnvironmentFile")
    assert "/etc/shardline/flower.env" in files
    argv = exec_start(FLOWER)
    assert "--address=127.0.0.1" in argv
    assert not any("basic_auth" in a for a in argv), "a password on the command line leaks"


def test_beat_and_workers_share_the_schedule_setting():
    # Both read SHARDLINE_SCHEDULE_FILE, so it belongs in the env file they share, not in one unit.
    for unit in (WORKER, BEAT):
        environment = unit_values(unit, "Service", "Environment")
        assert not [e for e in environment if e.startswith("SHARDLINE_SCHEDULE_FILE=")]
    assert "SHARDLINE_SCHEDULE_FILE=" in (SYSTEMD / "shardline.env.example").read_text()
    assert "--enable-remote-control" in exec_start(BEAT)


def test_target_groups_the_services():
    assert unit_values(TARGET, "Install", "WantedBy") == ["multi-user.target"]
    assert unit_entries(TARGET)


def test_systemd_analyze_verify(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # Point ExecStart at this checkout's venv: verify insists the binary exists.
    venv = Path(sys.executable).parent.parent
    copies = []
    for unit in (*SERVICES, TARGET):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(VENV, str(venv)))
        copies.append(copy)
    instance = tmp_path / "shardline-worker@1.service"  # a template verifies as an instance
    targets = [str(c) for c in copies if "@." not in c.name] + [str(instance)]
    result = subprocess.run([analyze, "verify", "--man=no", *targets], capture_output=True,
                            text=True, check=False, timeout=120)
    # verify exits 0 on unknown keys and bad values, only printing them: read its output.
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if "shardline" in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_systemd_analyze_verify_notices_a_mistake(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "shardline-broken.service"
    unit.write_text(BEAT.read_text().replace(VENV, str(Path(sys.executable).parent.parent))
                    .replace("Restart=on-failure", "Restart=sometimes"))
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                            text=True, check=False, timeout=120)
    assert "shardline-broken.service" in result.stdout + result.stderr


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in (SYSTEMD / "shardline.env.example").read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        key, sep, value = raw.partition("=")
        assert sep and key == key.strip() and value == value.strip(), raw
        assert not value.startswith(("'", '"')) and " " not in value, f"keep it sh-safe: {raw}"
        values[key] = value
    return values


def test_env_example_makes_valid_settings():
    from shared.settings import Settings

    values = env_example()
    assert "SHARDLINE_API_KEY" not in values and "GEMINI_API_KEY" not in values
    fields = {k.removeprefix("SHARDLINE_").lower(): v for k, v in values.items()
              if k.startswith("SHARDLINE_")}
    settings = Settings(**fields)
    assert settings.broker_url and not settings.embedded


def test_env_example_reads_the_same_in_sh(tmp_path: Path):
    # cron sources the same file: `set -a; . file` must export exactly these values.
    result = subprocess.run(
        ["/bin/sh", "-c", f"set -a; . {SYSTEMD / 'shardline.env.example'}; env"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    )
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    for key, value in env_example().items():
        assert exported[key] == value


def test_env_example_broker_needs_a_password_and_callers_have_prefixes():
    from shared.settings import Settings

    values = env_example()
    for key in ("SHARDLINE_BROKER_URL", "SHARDLINE_RESULT_BACKEND"):
        assert values[key].startswith("redis://shardline:PASSWORD@"), key
    fields = {k.removeprefix("SHARDLINE_").lower(): v for k, v in values.items()
              if k.startswith("SHARDLINE_")}
    settings = Settings(**fields)
    assert settings.input_prefixes and settings.output_prefixes
