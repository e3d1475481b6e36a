"""Paths and readers the deploy tests share: YAML documents, systemd entries, settings names."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"

#: What every worker everywhere runs on (seconds): compose, Kubernetes and systemd agree.
WORKER_STOP_GRACE_SECONDS = 900

yaml = pytest.importorskip("yaml", reason="PyYAML (the dev extra) parses the deploy files")


def yaml_docs(path: Path) -> list[Any]:
    """Every document of a YAML file, empty ones dropped."""
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def yaml_doc(path: Path) -> Any:
    docs = yaml_docs(path)
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


def deploy_files() -> list[Path]:
    """Every text file under deploy/ that git would track (local secrets are ignored)."""
    ignored = {DEPLOY / ".env", DEPLOY / "shardline.env", DEPLOY / "flower" / "flower.env"}
    files = []
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path in ignored or "__pycache__" in path.parts:
            continue
        if path.parent == DEPLOY / "secrets" and path.name not in {"README.md", ".gitignore"}:
            continue
        files.append(path)
    return files


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """A systemd unit as (section, key, value) in file order; repeated keys all kept."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=value: {raw!r}"
        assert section, f"{path}: {key} outside any section"
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in unit_entries(path) if s == section and k == key]


@cache
def settings_variables() -> frozenset[str]:
    """Every environment variable that fills a field of ``shared.settings.Settings``."""
    names: set[str] = set()
    prefix = str(Settings.model_config.get("env_prefix", ""))
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.update(c.upper() for c in choices if isinstance(c, str) and c.isupper())
        else:
            names.add(f"{prefix}{name}".upper())
    return frozenset(names)


def parse_duration(text: str) -> float:
    """Seconds in a compose ("15m", "1h30m") or systemd ("15min", "900") duration."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip().lower())
    assert parts and "".join(n + u for n, u in parts) == re.sub(r"\s", "", text.lower()), text
    return sum(float(number) * units[unit] for number, unit in parts)
