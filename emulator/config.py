"""The emulator's settings: one pydantic model, built by the CLI or by tests.

:func:`config_from_env` reads ``EMULATOR_*`` variables explicitly (nothing is read at import),
so a test that builds ``EmulatorConfig(...)`` is never surprised by the developer's shell.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from emulator.faults import FaultConfig

#: Discovery doc ``mediaUpload.maxSize``: the largest file the Files API takes.
MAX_FILE_BYTES = 2_147_483_648
#: 48 h: how long a file lives, and how long a job may stay live before it EXPIRES.
FORTY_EIGHT_HOURS = 48 * 3600.0

_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class EmulatorConfig(BaseModel):
    """Everything that shapes one emulator instance.

    Times are *emulated* seconds; ``time_scale`` says how many pass per real second.
    Files, jobs and the ``*_per_key`` limits belong to the caller's project, as at Google:
    with ``projects``, the keys of one project see the same files and jobs and share one
    set of limits; a key in no project is a project of its own.
    With the defaults a job is PENDING 30 s and RUNNING 90 s emulated: 2 s of real time.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=0, le=65535)
    api_keys: list[str] = Field(
        default_factory=list, description="Accepted keys; empty accepts any non-empty key."
    )
    projects: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Google Cloud projects: name -> its keys (accepted keys too). Keys of one "
        "project share its files, jobs and limits; a key in no project is a project of its own.",
    )
    time_scale: float = Field(default=60.0, gt=0, description="Emulated seconds per real second.")
    data_dir: Path | None = Field(
        default=None, description="Persist files and jobs here; None uses a temp dir."
    )
    faults: FaultConfig = Field(default_factory=FaultConfig)
    keep_order: bool = Field(default=False, description="Output lines in input order.")
    public_base_url: str | None = Field(
        default=None, description="Base of absolute URLs handed out; default from the request."
    )

    # Files (limits are per project: a key's own, or the one it is grouped into)
    max_file_bytes: int = Field(default=MAX_FILE_BYTES, gt=0)
    storage_bytes_per_key: int = Field(default=20 * 1_000_000_000, gt=0)
    file_ttl_seconds: float = Field(default=FORTY_EIGHT_HOURS, gt=0)
    upload_chunk_granularity: int = Field(default=8 * 1024 * 1024, gt=0)
    allow_download_uploaded: bool = Field(
        default=False, description="The live API serves only GENERATED files."
    )

    # Batches
    max_inline_request_bytes: int = Field(default=20_000_000, gt=0)
    max_live_jobs_per_key: int = Field(default=100, gt=0)
    enqueued_token_budget: int | None = Field(
        default=None, gt=0, description="Enqueued tokens per project and model; None: unlimited."
    )
    enqueued_token_budgets: dict[str, int] = Field(
        default_factory=dict, description="Per-model overrides, keyed by model id."
    )
    quota_retry_delay_seconds: float = Field(default=60.0, ge=0)
    quota_retry_after_header: bool = False
    pending_seconds: float = Field(default=30.0, ge=0)
    running_seconds: float = Field(default=90.0, ge=0)
    job_expiry_seconds: float = Field(default=FORTY_EIGHT_HOURS, gt=0)
    embedding_dimensions: int = Field(default=768, gt=0)
    worker_threads: int = Field(default=2, gt=0)
    scramble_buckets: int = Field(default=16, ge=2, le=256)

    @field_validator("projects")
    @classmethod
    def _one_project_per_key(cls, projects: dict[str, list[str]]) -> dict[str, list[str]]:
        # Messages name projects, never keys.
        seen: dict[str, str] = {}
        for name, keys in projects.items():
            if not _PROJECT_NAME.fullmatch(name):
                raise ValueError(f"project name {name!r}: use letters, digits, '.', '_', '-'")
            if not keys:
                raise ValueError(f"project {name!r} has no keys")
            for key in keys:
                if key in seen and seen[key] != name:
                    raise ValueError(f"projects {seen[key]!r} and {name!r} share a key")
                seen[key] = name
        return projects

    def accepts(self, api_key: str) -> bool:
        """Whether a key is valid: any non-empty one, unless keys are listed (``api_keys``,
        or a project's keys, which are accepted too)."""
        if not api_key:
            return False
        if not self.api_keys:
            return True
        return api_key in self.api_keys or self.project_of(api_key) is not None

    def project_of(self, api_key: str) -> str | None:
        """The project a key is grouped into (None: the key is a project of its own)."""
        for name, keys in self.projects.items():
            if api_key in keys:
                return name
        return None

    # OpenAI-style batches (served under /openai/v1)
    openai_max_file_bytes: int = Field(default=200 * 1_000_000, gt=0)
    openai_max_requests_per_batch: int = Field(default=50_000, gt=0)

    # Anthropic Message Batches (served under /anthropic/v1)
    anthropic_max_body_bytes: int = Field(default=256 * 1_000_000, gt=0)
    anthropic_max_requests_per_batch: int = Field(default=100_000, gt=0)

    def token_budget(self, model: str) -> int | None:
        """The enqueued-token budget of one model (``models/`` prefix optional)."""
        bare = model.removeprefix("models/")
        return self.enqueued_token_budgets.get(bare, self.enqueued_token_budget)


def parse_projects(text: str) -> dict[str, list[str]]:
    """``"projA=KEY1,KEY2;projB=KEY3"`` -> ``{"projA": ["KEY1", "KEY2"], "projB": ["KEY3"]}``."""
    projects: dict[str, list[str]] = {}
    for group in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, keys = group.partition("=")
        if not sep or not name.strip():
            raise ValueError("a project group is NAME=KEY1,KEY2 (groups separated by ';')")
        projects.setdefault(name.strip(), []).extend(
            key.strip() for key in keys.split(",") if key.strip()
        )
    return projects


def load_faults(source: str | Path) -> FaultConfig:
    """Fault settings from a JSON file path, or from inline JSON text."""
    text = str(source).strip()
    if text.startswith("{"):
        return FaultConfig.model_validate(orjson.loads(text))
    return FaultConfig.model_validate(orjson.loads(Path(text).read_bytes()))


_ENV_FIELDS = {
    "EMULATOR_HOST": "host",
    "EMULATOR_PORT": "port",
    "EMULATOR_TIME_SCALE": "time_scale",
    "EMULATOR_DATA_DIR": "data_dir",
    "EMULATOR_PUBLIC_BASE_URL": "public_base_url",
    "EMULATOR_MAX_FILE_BYTES": "max_file_bytes",
    "EMULATOR_STORAGE_BYTES_PER_KEY": "storage_bytes_per_key",
    "EMULATOR_MAX_LIVE_JOBS_PER_KEY": "max_live_jobs_per_key",
    "EMULATOR_ENQUEUED_TOKEN_BUDGET": "enqueued_token_budget",
    "EMULATOR_UPLOAD_CHUNK_GRANULARITY": "upload_chunk_granularity",
}


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config fields set by ``EMULATOR_*`` variables (the CLI lets flags override them).

    ``EMULATOR_API_KEYS`` is comma separated; ``EMULATOR_PROJECTS`` is
    ``projA=KEY1,KEY2;projB=KEY3`` (:func:`parse_projects`); ``EMULATOR_FAULTS`` is JSON
    text or a path;
    ``EMULATOR_KEEP_ORDER`` and ``EMULATOR_ALLOW_DOWNLOAD_UPLOADED`` take 1/true/yes.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, field in _ENV_FIELDS.items():
        if env.get(name):
            values[field] = env[name]
    if env.get("EMULATOR_API_KEYS"):
        values["api_keys"] = [k.strip() for k in env["EMULATOR_API_KEYS"].split(",") if k.strip()]
    if env.get("EMULATOR_PROJECTS"):
        values["projects"] = parse_projects(env["EMULATOR_PROJECTS"])
    if env.get("EMULATOR_FAULTS"):
        values["faults"] = load_faults(env["EMULATOR_FAULTS"])
    for name, field in (
        ("EMULATOR_KEEP_ORDER", "keep_order"),
        ("EMULATOR_ALLOW_DOWNLOAD_UPLOADED", "allow_download_uploaded"),
    ):
        if env.get(name):
            values[field] = env[name].strip().lower() in {"1", "true", "yes", "on"}
    return values
