"""Across deploy/: every SHARDLINE_* name is a real setting (or a documented exception), the
settings table is complete, and nothing that looks like a real secret is committed."""

from __future__ import annotations

import re

from tests.deploy._deploy import DEPLOY, deploy_files, settings_variables

README = DEPLOY / "README.md"
VARIABLE = re.compile(r"\bSHARDLINE_[A-Z0-9_]*[A-Z0-9]\b")
#: SHARDLINE_* names that are not Settings fields; each is explained in deploy/README.md.
EXCEPTIONS = {
    "SHARDLINE_SECRETS_DIR": "read by load_settings(), where to find secret files",
    "SHARDLINE_IMAGE": "compose interpolation: the image to run",
    "SHARDLINE_SCHEDULE": "compose interpolation: the schedule file to mount",
}
SECRET_LOOKING = {
    "Google API key": re.compile(r"AIza[0-9A-Za-z_-]{35}"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "password in a URL": re.compile(r"://[^/\s:@]*:(?!PASSWORD@|pass@)[^/\s@]{6,}@"),
}


def mentioned() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in deploy_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for name in VARIABLE.findall(text):
            found.setdefault(name, set()).add(path.relative_to(DEPLOY).as_posix())
    return found


def test_every_shardline_variable_is_a_setting():
    known = settings_variables() | EXCEPTIONS.keys()
    unknown = {name: sorted(where) for name, where in mentioned().items() if name not in known}
    assert not unknown, f"not fields of shared.settings.Settings (typos?): {unknown}"


def test_the_scan_sees_a_typo():
    assert "SHARDLINE_BROKER_URI" not in settings_variables()
    assert "SHARDLINE_BROKER_URL" in settings_variables()
    assert "GEMINI_API_KEY" in settings_variables()  # aliases count


def test_exceptions_are_documented_and_still_needed():
    text = README.read_text()
    used = mentioned()
    for name in EXCEPTIONS:
        assert name in used, f"{name} is no longer used in deploy/: drop the exception"
        assert name not in settings_variables(), f"{name} became a setting: drop the exception"
        assert re.search(rf"`{name}`", text), f"deploy/README.md must explain {name}"


def test_readme_settings_table_covers_every_setting():
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    in_table = {name for row in rows for name in VARIABLE.findall(row.split("|")[1])}
    missing = sorted(settings_variables() - in_table - {"GEMINI_API_KEY"})
    assert not missing, f"add rows to the settings table of deploy/README.md: {missing}"


def test_nothing_secret_looking_is_committed():
    for path in deploy_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for what, pattern in SECRET_LOOKING.items():
            match = pattern.search(text)
            assert not match, f"{path}: {what}: {match.group(0)!r}"


def test_the_secret_patterns_match_real_shapes():
    fake_key = "AIza" + "Sy" + "A" * 33
    assert SECRET_LOOKING["Google API key"].search(fake_key)
    assert SECRET_LOOKING["password in a URL"].search("redis://:hunter2hunter@redis:6379/0")
    assert not SECRET_LOOKING["password in a URL"].search("redis://:PASSWORD@redis:6379/0")
