"""Stage 1: validate the spec, register the run (its id claimed once), write the manifest."""

from __future__ import annotations

from pydantic import BaseModel

from shared.errors import InputFileError, SpecError
from shared.provider.limits import shard_limits
from shared.run.records import RunManifest
from shared.run.registry import RunEntry, RunRegistry
from shared.run.spec import RunSpec
from shared.run.store import RunStore
from shared.settings import Settings
from shared.storage import open_storage, split_uri


class RegisteredRun(BaseModel):
    """What ``shardline.start_run`` answers: small, secret-free, stable."""

    run_id: str
    output_uri: str
    created: bool


def effective_manifest(settings: Settings, spec: RunSpec, run_id: str) -> RunManifest:
    options = spec.options
    provider = spec.provider or settings.provider
    if provider == "anthropic" and spec.kind == "embed":
        raise SpecError("provider anthropic has no embeddings: use --kind generate")
    model = spec.model or settings.default_model(provider, spec.kind)
    max_bytes, max_requests = shard_limits(
        provider,
        model=model,
        kind=spec.kind,
        max_bytes=options.shard_max_bytes or settings.shard_max_bytes,
        max_requests=options.shard_max_requests or settings.shard_max_requests,
    )
    return RunManifest(
        run_id=run_id,
        spec=spec,
        model=model,
        kind=spec.kind,
        provider=provider,
        shard_max_bytes=max_bytes,
        shard_max_requests=max_requests,
        max_request_attempts=options.max_request_attempts or settings.max_request_attempts,
        max_job_attempts=options.max_job_attempts or settings.max_job_attempts,
    )


def registry(settings: Settings) -> RunRegistry:
    return RunRegistry(open_storage(settings.state_uri))


def register_run(settings: Settings, spec: RunSpec) -> RegisteredRun:
    """Register the run and write its manifest; returns whether this call created it.

    The input must exist (a clear error names it otherwise). The output prefix must be empty
    or hold this same run: two runs never share an output. Nothing is sent to the broker:
    ``workers.launch.launch_run`` does that.
    """
    input_store, input_key = split_uri(spec.input_uri)
    if not input_store.exists(input_key):
        raise InputFileError(spec.input_uri, "no such file or object")
    entry, created = registry(settings).claim(spec)
    store = RunStore(open_storage(spec.output_uri))
    manifest = store.settle_manifest(effective_manifest(settings, spec, entry.run_id))
    if manifest.run_id != entry.run_id:
        raise SpecError(
            f"{spec.output_uri} already holds run {manifest.run_id}; choose another output"
        )
    return RegisteredRun(run_id=entry.run_id, output_uri=entry.output_uri, created=created)


def lookup_run(settings: Settings, run_ref: str) -> RunEntry:
    """A run by id, or by its output location (anything containing '/' or ':')."""
    if "/" in run_ref or ":" in run_ref:
        manifest = RunStore(open_storage(run_ref)).manifest()
        return RunEntry(
            run_id=manifest.run_id,
            output_uri=manifest.spec.output_uri,
            input_uri=manifest.spec.input_uri,
            idempotency_key=manifest.spec.idempotency_key,
        )
    return registry(settings).lookup(run_ref)
