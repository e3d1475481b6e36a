"""deploy/cron/shardline.crontab: the syntax cron reads, and each job run for real by /bin/sh
with stand-ins for `shardline` and `logger`."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.access import AccessPolicy
from shared.settings import Settings
from tests.deploy._deploy import DEPLOY, SYSTEMD
from tests.deploy.test_systemd import env_example

CRONTAB = DEPLOY / "cron" / "shardline.crontab"
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
FIELD_LIMITS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
             "dec"],
         4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}


@dataclass
class Job:
    fields: list[str]
    command: str


def parse() -> tuple[dict[str, str], list[Job]]:
    env: dict[str, str] = {}
    jobs: list[Job] = []
    for raw in CRONTAB.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if match and not line[0].isdigit() and not line.startswith("*"):
            env[match.group(1)] = match.group(2)
            continue
        parts = line.split(None, 5)
        assert len(parts) == 6, f"not 5 time fields and a command: {raw!r}"
        jobs.append(Job(parts[:5], parts[5]))
    return env, jobs


def field_ok(text: str, position: int) -> bool:
    low, high = FIELD_LIMITS[position]
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2:
            return False
        for bound in bounds:
            if bound.lower() in NAMES.get(position, []):
                continue
            if not bound.isdigit() or not low <= int(bound) <= high:
                return False
    return True


def cron_command(command: str) -> tuple[str, str | None]:
    """What cron hands to the shell: ``\\%`` becomes ``%``; a bare ``%`` starts stdin."""
    out = ""
    i = 0
    while i < len(command):
        if command.startswith("\\%", i):
            out += "%"
            i += 2
        elif command[i] == "%":
            return out, command[i + 1 :].replace("%", "\n")
        else:
            out += command[i]
            i += 1
    return out, None


def test_fields_and_environment():
    env, jobs = parse()
    assert jobs
    assert env["SHELL"] == "/bin/sh"
    assert "/opt/shardline/venv/bin" in env["PATH"].split(":")
    assert env["MAILTO"]
    for job in jobs:
        for position, text in enumerate(job.fields):
            assert field_ok(text, position), f"bad cron field {text!r} in {job}"


def test_field_check_can_fail():
    assert not field_ok("61", 0)
    assert not field_ok("*/0", 1)
    assert not field_ok("1-2-3", 2)
    assert field_ok("1-5/2,30", 0) and field_ok("mon-fri", 4)


def test_every_job_submits_with_an_idempotency_key_and_escaped_percent():
    _env, jobs = parse()
    for job in jobs:
        assert "shardline submit" in job.command
        assert "--idempotency-key" in job.command
        bare = re.findall(r"(?<!\\)%", job.command)
        assert not bare, f"unescaped % in {job.command!r}: cron would cut the command there"
        _command, stdin = cron_command(job.command)
        assert stdin is None
        assert "logger" in job.command and "/etc/shardline/shardline.env" in job.command


def test_percent_handling_matches_cron():
    assert cron_command(r"date +\%F") == ("date +%F", None)
    assert cron_command("date +%F") == ("date +", "F")


def stubs(tmp_path: Path, exit_code: int) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "shardline").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/args"\n'
        f'printf "%s" "$SHARDLINE_BROKER_URL" > "{tmp_path}/broker"\n'
        'echo "run-0123"\necho "a warning" >&2\n'
        f"exit {exit_code}\n"
    )
    (bin_dir / "logger").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" > "{tmp_path}/logger-args"\n'
        f'cat > "{tmp_path}/syslog"\n'
    )
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return bin_dir


def run_job(job: Job, tmp_path: Path, exit_code: int) -> subprocess.CompletedProcess[str]:
    command, _ = cron_command(job.command)
    env_file = tmp_path / "shardline.env"
    env_file.write_text((SYSTEMD / "shardline.env.example").read_text())
    command = command.replace("/etc/shardline/shardline.env", str(env_file))
    env = {"PATH": f"{stubs(tmp_path, exit_code)}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize("index", range(len(parse()[1])))
def test_job_runs_submit_and_logs_to_syslog(tmp_path: Path, index: int):
    from workers.cli import build_parser

    job = parse()[1][index]
    days = {datetime.now(UTC).strftime("%F")}
    result = run_job(job, tmp_path, exit_code=0)
    days.add(datetime.now(UTC).strftime("%F"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", "cron would mail this"
    args = (tmp_path / "args").read_text().splitlines()
    parsed = build_parser().parse_args(args)  # the real CLI accepts exactly these arguments
    assert parsed.command == "submit"
    assert parsed.idempotency_key and "%" not in parsed.idempotency_key
    assert "$(" not in " ".join(args), "the shell expanded every $(date ...)"
    if "\\%F" in job.command:
        assert any(day in parsed.idempotency_key for day in days)
    assert (tmp_path / "broker").read_text().startswith("redis://"), "the env file was loaded"
    # The workers' access policy (the same env file) lets this run read and write.
    policy = AccessPolicy.from_settings(Settings(**{
        k.removeprefix("SHARDLINE_").lower(): v for k, v in env_example().items()
        if k.startswith("SHARDLINE_")}))
    policy.check_input(parsed.input)
    policy.check_output(parsed.out)
    assert "run-0123" in (tmp_path / "syslog").read_text()
    assert "a warning" in (tmp_path / "syslog").read_text()
    assert "-t shardline-cron" in (tmp_path / "logger-args").read_text()


@pytest.mark.parametrize("index", range(len(parse()[1])))
def test_a_failed_submit_reaches_cron_mail(tmp_path: Path, index: int):
    job = parse()[1][index]
    result = run_job(job, tmp_path, exit_code=4)
    assert "failed with exit 4" in result.stderr
    assert "run-0123" not in result.stderr, "the details go to syslog, the alarm to mail"
