"""Shardline configuration: one pydantic-settings class, prefix ``SHARDLINE_``.

Build it once at an entry point (CLI, worker start, emulator) with :func:`load_settings`
and pass it down; nothing reads the environment at import time.

Secrets: the API key is a ``SecretStr`` read from ``SHARDLINE_API_KEY`` (or
``GEMINI_API_KEY``), or from a file named ``SHARDLINE_API_KEY`` in the secrets directory
(``SHARDLINE_SECRETS_DIR``, default ``/run/secrets`` when it exists), the layout Docker and
Kubernetes secrets use. A key pool for admission across keys is ``SHARDLINE_API_KEYS``
(comma separated).

Key pools and Google Cloud projects: the provider's limits (live batch jobs, enqueued tokens,
file storage, the spend caps) belong to a project, and every key of a project shares them.
An entry ``label:KEY`` of ``SHARDLINE_API_KEYS`` says which project a key belongs to; keys
without a label (and ``SHARDLINE_API_KEY`` unless it is also listed with one) form ONE
project, :data:`DEFAULT_PROJECT`. That default is the safe one: counting two keys of one
project as two projects would admit twice what the provider allows, and every extra job
would meet a 429; counting two projects as one only leaves capacity unused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError
from shared.limits import check_model
from shared.validation import problems

#: The provider's hard limit on one uploaded file (discovery doc ``mediaUpload.maxSize``).
PROVIDER_MAX_FILE_BYTES = 2_147_483_648
#: Default shard size: 2 GB decimal, 147 MB under the provider's limit, so a line that pushes
#: a shard past the cut can never push it past what the provider accepts.
DEFAULT_SHARD_MAX_BYTES = 2_000_000_000
GOOGLE_API_BASE_URL = "https://generativelanguage.googleapis.com"
OPENAI_API_BASE_URL = "https://api.openai.com/v1"
#: The providers a run can use (RunSpec ``provider``, ``SHARDLINE_PROVIDER``).
ProviderName = Literal["gemini", "openai", "anthropic"]
ANTHROPIC_API_BASE_URL = "https://api.anthropic.com"
#: Default cap on one input line: far above any real request (the provider's inline limit
#: is 20 MB), far below a shard, so one line can never take a worker's memory with it.
DEFAULT_LINE_MAX_BYTES = 32 * 1024 * 1024
ENV_PREFIX = "SHARDLINE_"
#: The project of every key given without a ``label:`` (see the module docstring).
DEFAULT_PROJECT = "default"
_PROJECT_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class PoolKey(BaseModel):
    """One key of the pool and the Google Cloud project it belongs to (None: unlabelled)."""

    model_config = ConfigDict(frozen=True)

    key: SecretStr
    project: str | None = None

    @classmethod
    def parse(cls, entry: str | SecretStr, position: int) -> PoolKey:
        """``KEY`` or ``label:KEY``; errors name the entry's position, never its text."""
        text = entry.get_secret_value() if isinstance(entry, SecretStr) else entry
        label, sep, key = text.strip().partition(":")
        if not sep:
            return cls(key=SecretStr(label))
        where = f"SHARDLINE_API_KEYS entry {position}"
        if not _PROJECT_LABEL.fullmatch(label.strip()):
            raise ValueError(
                f"{where}: the part before ':' must be a project label (letters, digits, "
                "'.', '_', '-', at most 63)"
            )
        if not key.strip():
            raise ValueError(f"{where}: no key after the project label")
        return cls(key=SecretStr(key.strip()), project=label.strip())


def _default_state_uri() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "shardline")


def secrets_dir() -> str | None:
    """The directory of secret files, by :func:`load_settings`' rule: ``SHARDLINE_SECRETS_DIR``,
    else ``/run/secrets`` if it exists; None when neither (an empty value turns files off)."""
    directory = os.environ.get("SHARDLINE_SECRETS_DIR")
    if directory is None and Path("/run/secrets").is_dir():
        directory = "/run/secrets"
    return directory or None


class Settings(BaseSettings):
    """Everything a worker, the CLI or a client service needs to know."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        hide_input_in_errors=True,  # a refused value may be (or contain) a key
    )

    # Provider
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SHARDLINE_API_KEY", "GEMINI_API_KEY", "api_key"),
    )
    api_keys: Annotated[list[PoolKey], NoDecode] = Field(
        default_factory=list,
        description="Optional pool of keys, comma separated, each ``KEY`` or ``project:KEY``.",
    )
    api_base_url: str = GOOGLE_API_BASE_URL
    api_version: str = "v1beta"
    gemini_inline_max_bytes: int = Field(
        default=10_000_000, ge=0, le=19_000_000,
        description="Gemini parts up to this many staged bytes go inline (0: never).",
    )
    provider: ProviderName = Field(
        default="gemini", description="The provider of runs that do not name one."
    )
    http_timeout_seconds: float = Field(default=120.0, gt=0)
    http_max_retries: int = Field(default=5, ge=0)

    # OpenAI-style Batch API (OpenAI, Azure OpenAI, any service with the same endpoints).
    # Its own keys: a Gemini key is never sent to another service. No ``OPENAI_API_KEY``
    # alias: a key other tools on the machine use is not picked up without being named.
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SHARDLINE_OPENAI_API_KEY", "openai_api_key"),
    )
    openai_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    openai_base_url: str = OPENAI_API_BASE_URL
    openai_completion_window: str = "24h"
    openai_generate_model: str = "gpt-4o-mini"
    openai_embed_model: str = "text-embedding-3-small"
    #: 5 GB under the 100 GB an organization may hold in files.
    openai_file_storage_budget_bytes: int = Field(default=95 * 1_000_000_000, gt=0)
    openai_enqueued_token_budget: int | None = Field(default=None, gt=0)

    # Anthropic Message Batches (requests inline in the create call; its own keys too).
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SHARDLINE_ANTHROPIC_API_KEY", "anthropic_api_key"),
    )
    anthropic_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    anthropic_base_url: str = ANTHROPIC_API_BASE_URL
    anthropic_version: str = "2023-06-01"
    anthropic_generate_model: str = "claude-haiku-4-5"
    anthropic_enqueued_token_budget: int | None = Field(default=None, gt=0)

    # Celery
    broker_url: str | None = Field(
        default=None, description="None runs the embedded in-memory broker and worker."
    )
    result_backend: str | None = None
    redis_url: str | None = Field(
        default=None,
        description="Redis for admission control across workers; default: the broker or "
        "result backend when it is Redis, an in-process fake in embedded mode.",
    )
    # Redis redelivers a message unacknowledged for this long. Recovery from a dead worker
    # does not wait for it (leases and the deadline check do that), so it only has to stay
    # above the longest countdown: polls (300 s) and error backoff (300 s) are capped at
    # 80 % of it (480 s). A task running longer is delivered again and steps aside.
    visibility_timeout_seconds: int = Field(default=600, gt=0)
    rabbitmq_consumer_timeout_seconds: int = Field(
        default=1800, gt=0, description="The broker's consumer_timeout (RabbitMQ default)."
    )
    embedded_concurrency: int = Field(
        default=4, gt=0, description="Worker threads of the embedded (no broker) mode."
    )

    # Liveness (see README "Recovery"): a running task renews its lease every third of
    # lease_seconds; a lapsed lease, or a message overdue by the grace, is restarted by the
    # deadline check, which one worker of the fleet runs every deadline_check_seconds.
    lease_seconds: float = Field(default=60.0, ge=3.0)
    liveness_grace_seconds: float = Field(default=60.0, ge=0.0)
    deadline_check_seconds: float = Field(default=20.0, gt=0)

    # Where run records and idempotency keys live (a path, file://, s3:// or gs:// URI).
    state_uri: str = Field(default_factory=_default_state_uri)

    # What callers may read and write (comma separated paths or URIs; see shared.access).
    # Empty: everything but the deny list in the embedded mode, nothing with a broker.
    input_prefixes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    output_prefixes: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Beat: periodic runs and inbox sweeps (TOML, see README "Cron and beat"); None: none.
    schedule_file: Path | None = None

    # Sharding
    shard_max_bytes: int = Field(default=DEFAULT_SHARD_MAX_BYTES, gt=0, le=PROVIDER_MAX_FILE_BYTES)
    shard_max_requests: int = Field(default=50_000, gt=0)
    line_max_bytes: int = Field(
        default=DEFAULT_LINE_MAX_BYTES,
        gt=0,
        le=PROVIDER_MAX_FILE_BYTES,
        description="A longer input line is rejected (spooled to disk, never held in memory).",
    )
    max_shards: int = Field(
        default=10_000,
        gt=0,
        description="A run may not cut more shards (batch jobs) than this: an input that "
        "needs more at its shard limits fails its plan, naming them (shared.jsonl.split).",
    )
    poison_max_deliveries: int = Field(
        default=3,
        ge=1,
        description="A task message whose worker died this many times in a row is parked "
        "and its run failed (see shared.poison).",
    )
    upload_chunk_bytes: int = Field(default=8 * 1024 * 1024, gt=0)

    # Models
    generate_model: str = "gemini-2.5-flash"
    embed_model: str = "gemini-embedding-001"

    # Polling (countdown-based, never sleeping)
    poll_initial_seconds: float = Field(default=10.0, gt=0)
    poll_max_seconds: float = Field(default=300.0, gt=0)
    poll_backoff_factor: float = Field(default=1.5, ge=1.0)
    poll_jitter: float = Field(default=0.1, ge=0.0, le=1.0)

    # Retries
    max_request_attempts: int = Field(default=3, ge=1)
    max_job_attempts: int = Field(default=3, ge=1)

    # Admission control (shared by every worker through Redis), per Google Cloud project.
    # The old name ..._PER_KEY is still read: the limit always was the project's.
    max_live_jobs_per_project: int = Field(
        default=100,
        gt=0,
        validation_alias=AliasChoices(
            "SHARDLINE_MAX_LIVE_JOBS_PER_PROJECT",
            "SHARDLINE_MAX_LIVE_JOBS_PER_KEY",
            "max_live_jobs_per_project",
            "max_live_jobs_per_key",
        ),
    )
    reconcile_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often beat runs the reconciler."
    )
    enqueued_token_budget: int | None = Field(default=None, gt=0)
    # 1 GB under the provider's 20 GB per project: files made outside Shardline count too.
    file_storage_budget_bytes: int = Field(default=19 * 1_000_000_000, gt=0)

    # Request cache (README "Request cache"); None: ``<state_uri>/cache``.
    cache_uri: str | None = None
    cache_max_age_days: float = Field(default=30.0, gt=0, description="cache prune: age limit.")
    cache_max_bytes: int | None = Field(default=None, gt=0, description="cache prune: size limit.")

    # Cost estimates (README "Cost"): what a request is assumed to answer, and how long a
    # batch job takes at best, for the numbers nobody knows before the run.
    estimate_output_tokens: int = Field(default=256, ge=0)
    estimate_job_seconds: float = Field(default=600.0, gt=0)

    # Logs
    log_json: bool = False

    # Prometheus metrics (shared.metrics): off unless a port is set; 0 picks a free port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(default="0.0.0.0", description="Interface the endpoint binds.")
    metrics_cache_seconds: float = Field(
        default=15.0, ge=0, description="How long one read of the run records serves scrapes."
    )

    @field_validator("openai_api_keys", "anthropic_api_keys", mode="before")
    @classmethod
    def _split_plain_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [
                PoolKey.parse(item, position) if isinstance(item, str | SecretStr) else item
                for position, item in enumerate(value, 1)
            ]
        return value

    @field_validator("generate_model", "embed_model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return check_model(value)

    @property
    def countdown_cap_seconds(self) -> float:
        """The longest countdown any task may schedule.

        A countdown task is held unacknowledged by the worker until its ETA. On Redis a
        message unacknowledged for longer than the visibility timeout is delivered again;
        RabbitMQ closes the channel of a consumer holding one past ``consumer_timeout`` (and
        redelivers everything it held). Stay at 80 % of whichever applies.
        """
        limit = float(self.visibility_timeout_seconds)
        if (self.broker_url or "").startswith(("amqp://", "amqps://", "pyamqp://")):
            limit = min(limit, float(self.rabbitmq_consumer_timeout_seconds))
        return 0.8 * limit

    @model_validator(mode="after")
    def _one_project_per_key(self) -> Settings:
        labels: dict[str, str] = {}
        for position, entry in enumerate(self.api_keys, 1):
            raw = entry.key.get_secret_value()
            if entry.project is None:
                continue
            if labels.setdefault(raw, entry.project) != entry.project:
                raise ValueError(
                    f"SHARDLINE_API_KEYS entry {position}: the same key is listed with "
                    f"projects {labels[raw]!r} and {entry.project!r}; a key belongs to one"
                )
        return self

    @model_validator(mode="after")
    def _poll_fits_visibility(self) -> Settings:
        if self.poll_max_seconds >= self.countdown_cap_seconds:
            raise ValueError(
                f"poll_max_seconds must be under {self.countdown_cap_seconds:.0f} s (80 % of "
                "the visibility timeout, or of RabbitMQ's consumer_timeout), or a long poll "
                "countdown is delivered twice"
            )
        if self.poll_initial_seconds > self.poll_max_seconds:
            raise ValueError("poll_initial_seconds must not exceed poll_max_seconds")
        return self

    def cache_location(self) -> str:
        """Where the request cache lives: ``cache_uri``, else ``cache`` under the state URI."""
        if self.cache_uri:
            return self.cache_uri
        return self.state_uri.rstrip("/") + "/cache"

    def key_pool(self, provider: ProviderName = "gemini") -> list[SecretStr]:
        """Every configured key of ``provider``, primary first, without repeats."""
        if provider == "gemini":
            return [key for key, _ in self.key_projects()]
        if provider == "openai":
            primary, pool = self.openai_api_key, self.openai_api_keys
        else:
            primary, pool = self.anthropic_api_key, self.anthropic_api_keys
        keys: list[SecretStr] = []
        seen: set[str] = set()
        for key in ([primary] if primary else []) + list(pool):
            raw = key.get_secret_value()
            if raw and raw not in seen:
                seen.add(raw)
                keys.append(key)
        return keys

    def key_projects(self) -> list[tuple[SecretStr, str]]:
        """Every configured key with its project label, primary first, without repeats.

        A key's label is the one it is listed with in ``SHARDLINE_API_KEYS``; a key listed
        without one (or only as ``SHARDLINE_API_KEY``) is in :data:`DEFAULT_PROJECT`.
        """
        entries = ([PoolKey(key=self.api_key)] if self.api_key else []) + list(self.api_keys)
        labels: dict[str, str] = {}
        order: list[SecretStr] = []
        for entry in entries:
            raw = entry.key.get_secret_value()
            if not raw:
                continue
            if raw not in labels:
                order.append(entry.key)
                labels[raw] = DEFAULT_PROJECT
            if entry.project is not None:
                labels[raw] = entry.project
        return [(key, labels[key.get_secret_value()]) for key in order]

    def default_model(self, provider: ProviderName, kind: str) -> str:
        """The model of a run that names none."""
        if provider == "openai":
            return self.openai_embed_model if kind == "embed" else self.openai_generate_model
        if provider == "anthropic":
            return self.anthropic_generate_model  # no embeddings: refused at start
        return self.embed_model if kind == "embed" else self.generate_model

    def for_provider(self, provider: ProviderName) -> Settings:
        """These settings with ``provider``'s own admission budgets in the shared fields
        (what :class:`~shared.admission.Admission` reads)."""
        if provider == "openai":
            return self.model_copy(
                update={
                    "file_storage_budget_bytes": self.openai_file_storage_budget_bytes,
                    "enqueued_token_budget": self.openai_enqueued_token_budget,
                }
            )
        if provider == "anthropic":
            # No files are held at the provider: the requests travel in the create call.
            return self.model_copy(
                update={
                    "file_storage_budget_bytes": 10**15,
                    "enqueued_token_budget": self.anthropic_enqueued_token_budget,
                }
            )
        return self

    @field_validator("input_prefixes", "output_prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: Any) -> Any:
        from shared.access import parse_prefixes  # shared.access never imports settings

        if isinstance(value, str | list | tuple):
            return parse_prefixes(value)
        return value

    @property
    def secrets_directory(self) -> str | None:
        """The directory secret files are read from (:func:`secrets_dir`)."""
        return secrets_dir()

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: in-memory transport, in-process worker."""
        return not self.broker_url or self.broker_url.startswith("memory://")


def _variable(field: str) -> str:
    """The environment variable behind a field (``poll_max_seconds`` → its ``SHARDLINE_``
    name); a location that is not a field (an alias) is shown as it is."""
    head, _, rest = field.partition(".")
    if head in Settings.model_fields:
        head = ENV_PREFIX + head.upper()
    return f"{head}.{rest}" if rest else head


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, the secrets directory and explicit overrides.

    Raises ``ConfigError``, one line naming the variables and what is wrong with them, never
    their values (pydantic's own message quotes the input, which may be a key).
    """
    secrets_dir = os.environ.get("SHARDLINE_SECRETS_DIR")
    if secrets_dir is None and Path("/run/secrets").is_dir():
        secrets_dir = "/run/secrets"
    try:
        if secrets_dir:
            return Settings(_secrets_dir=secrets_dir, **overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {problems(exc, name=_variable)}") from None


def require_api_key(settings: Settings, provider: ProviderName | None = None) -> None:
    """Raise ``ConfigError`` unless a key of ``provider`` is configured (None: of any
    provider; a worker may serve runs of several). Work without one can only end with every
    request abandoned."""
    providers = [provider] if provider is not None else list(get_args(ProviderName))
    if any(settings.key_pool(name) for name in providers):
        return
    if provider == "openai":
        raise ConfigError(
            "no API key: set SHARDLINE_OPENAI_API_KEY (or SHARDLINE_OPENAI_API_KEYS)"
        )
    if provider == "anthropic":
        raise ConfigError(
            "no API key: set SHARDLINE_ANTHROPIC_API_KEY (or SHARDLINE_ANTHROPIC_API_KEYS)"
        )
    raise ConfigError(
        "no API key: set SHARDLINE_API_KEY (or GEMINI_API_KEY, SHARDLINE_API_KEYS), or "
        "put a file SHARDLINE_API_KEY in SHARDLINE_SECRETS_DIR"
    )
