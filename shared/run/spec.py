"""The run request: the one payload other services send, and its JSON schema contract.

A ``RunSpec`` is what ``shardline.start_run`` takes (as JSON) and what ``shardline submit``
builds. It holds no secret: keys come from the worker's settings, never from the payload.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.limits import (
    LABEL_NAME,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    MODEL_NAME,
    check_labels,
    check_model,
)
from shared.settings import ProviderName

Kind = Literal["generate", "embed"]

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The client of a spec that names none: the namespace idempotency keys had before clients.
DEFAULT_CLIENT = "default"


class RunOptions(BaseModel):
    """Per-run overrides of the worker settings; unset means "use the settings"."""

    model_config = ConfigDict(extra="forbid")

    shard_max_bytes: int | None = Field(default=None, gt=0, le=2_147_483_648)
    shard_max_requests: int | None = Field(default=None, gt=0)
    max_request_attempts: int | None = Field(default=None, ge=1, le=20)
    max_job_attempts: int | None = Field(default=None, ge=1, le=20)
    inline: bool | None = Field(
        default=None,
        description="Gemini: send parts inline in the create call (true), always as files "
        "(false), or by size (unset: parts under SHARDLINE_GEMINI_INLINE_MAX_BYTES).",
    )


class OutputSchema(BaseModel):
    """What every response's text must be: JSON valid against a schema (typed results).

    Exactly one source: ``json_schema`` (a JSON Schema inline), ``uri`` (a JSON Schema file:
    path, ``file://``, ``s3://``, ``gs://``), or ``from_request`` (each request's own
    ``generationConfig.responseJsonSchema``, else its OpenAPI-style ``responseSchema``).
    A response that does not parse or validate becomes an ``INVALID_OUTPUT`` error, retried
    like a retryable error while attempts remain (see :mod:`shared.typed`).
    """

    model_config = ConfigDict(extra="forbid")

    json_schema: dict[str, Any] | None = Field(default=None, description="Inline JSON Schema.")
    uri: str | None = Field(default=None, min_length=1, description="A JSON Schema file.")
    from_request: bool = Field(
        default=False, description="Each request's own responseJsonSchema / responseSchema."
    )

    @model_validator(mode="after")
    def _one_source(self) -> OutputSchema:
        sources = (self.json_schema is not None) + (self.uri is not None) + self.from_request
        if sources != 1:
            raise ValueError("output_schema: give exactly one of json_schema, uri, from_request")
        return self


class RunSpec(BaseModel):
    """One run: where the requests are, where the results go, and how to run them.

    ``input_uri`` and ``output_uri`` are local paths, ``file://``, ``s3://`` or ``gs://``
    URIs. ``output_uri`` is a prefix ("directory") that the run owns.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "input_uri": "s3://bucket/in/requests.jsonl",
                    "output_uri": "s3://bucket/out/2026-11-26",
                    "model": "gemini-2.5-flash",
                    "kind": "generate",
                    "idempotency_key": "nightly-2026-11-26",
                }
            ]
        },
    )

    input_uri: str = Field(min_length=1, description="JSONL of requests.")
    output_uri: str = Field(min_length=1, description="Prefix that receives the results.")
    model: str | None = Field(
        default=None,
        max_length=140,
        json_schema_extra={"pattern": f"^{MODEL_NAME.pattern}$"},
        description="Model name (e.g. gemini-2.5-flash, models/..., tunedModels/...); the "
        "worker's default for the kind if unset.",
    )
    kind: Kind = Field(default="generate", description="generate (text) or embed.")
    provider: ProviderName | None = Field(
        default=None,
        description="Whose batch API runs it (gemini, openai, anthropic); the worker's default "
        "if unset.",
    )
    client: str = Field(
        default=DEFAULT_CLIENT,
        description="Who asks: the namespace of idempotency_key (1-64 letters, digits, ._-). "
        "A namespace, not a credential.",
    )
    idempotency_key: str | None = Field(
        default=None,
        description="The same key twice (for the same client) starts one run; the second call "
        "returns the first id.",
    )
    options: RunOptions = Field(default_factory=RunOptions)
    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        json_schema_extra={
            "propertyNames": {"pattern": f"^{LABEL_NAME.pattern}$"},
            "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE_CHARS},
        },
        description=f"Labels copied to the summary: at most {MAX_LABELS}, names of 1-63 "
        f"letters, digits and '_.-', values of at most {MAX_LABEL_VALUE_CHARS} printable "
        "characters.",
    )
    cache: bool = Field(
        default=True,
        description="Answer requests seen in earlier runs from the request cache, and file "
        "this run's responses there; false: every request goes to the provider, none is kept.",
    )
    max_cost: float | None = Field(
        default=None,
        gt=0,
        description="Budget in USD: parts whose estimated cost would take the run past it "
        "are not submitted (their lines end as BUDGET_EXCEEDED errors).",
    )
    output_schema: OutputSchema | None = Field(
        default=None, description="Validate every response's text as JSON (typed results)."
    )

    @model_validator(mode="after")
    def _schema_needs_text(self) -> RunSpec:
        if self.output_schema is not None and self.kind == "embed":
            raise ValueError("output_schema applies to generate runs: an embedding has no text")
        return self

    @field_validator("idempotency_key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is not None and not _IDEMPOTENCY_KEY.fullmatch(value):
            raise ValueError("idempotency_key: 1-200 chars of letters, digits and ._:@/+=-")
        return value

    @field_validator("client")
    @classmethod
    def _check_client(cls, value: str) -> str:
        if not _CLIENT.fullmatch(value):
            raise ValueError("client: 1-64 chars of letters, digits and ._- (first a letter "
                             "or digit)")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_model(value).removeprefix("models/")

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)


def run_spec_schema() -> dict[str, Any]:
    """The stable JSON schema of the ``shardline.start_run`` payload."""
    schema = RunSpec.model_json_schema()
    schema["$id"] = "https://shardline.dev/schemas/run-spec.json"
    schema["title"] = "RunSpec"
    return schema
