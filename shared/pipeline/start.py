"""Stage 1: validate the spec, register the run (its id claimed once), write the manifest.

The trust boundary: the spec comes from whoever can send a task. Before anything is
claimed or written, its input and output are checked against this process's access policy
(``shared.access``), the input must exist and look like JSONL (``shared.jsonl.sniff``), and
the output must be empty or already this run's, and not inside another run's output
(``shared.ownership``). The workers check again on every task, with their own settings.
"""

from __future__ import annotations

from pydantic import BaseModel

from shared.access import AccessPolicy
from shared.errors import AccessError, InputFileError, SpecError
from shared.jsonl.sniff import check_jsonl
from shared.ownership import check_not_inside_a_run, check_output_free
from shared.provider.limits import shard_limits
from shared.run.records import RunManifest
from shared.run.registry import RunEntry, RunRegistry, run_id_for
from shared.run.spec import RunSpec
from shared.run.store import RunStore
from shared.settings import Settings
from shared.storage import open_storage, split_uri
from shared.typed import check_output_schema


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

    The input must be allowed and exist (a clear error names it otherwise), and be JSONL.
    The output must be allowed, and empty or hold this same run: two runs never share an
    output. All of that is checked before the claim. Nothing is sent to the broker:
    ``workers.launch.launch_run`` does that.

    A start refused after its claim (the output holds another run, storage failed) takes
    its registry entry back, so a refused run leaves no trace for ``status``, ``list`` or
    the reconciler, and a retry with the same key is a new claim.
    """
    policy = AccessPolicy.from_settings(settings)
    policy.check_input(spec.input_uri)
    if spec.output_schema is not None and spec.output_schema.uri is not None:
        try:  # workers read it, like the input: the same places are allowed
            policy.check_input(spec.output_schema.uri)
        except AccessError as exc:
            raise AccessError(str(exc).replace("input_uri", "output_schema.uri", 1)) from None
    where = policy.check_output(spec.output_uri)
    input_store, input_key = split_uri(spec.input_uri)
    if not input_store.exists(input_key):
        local = input_store.local_path(input_key)
        reason = "is a directory" if local is not None and local.is_dir() else (
            "no such file or object"
        )
        raise InputFileError(spec.input_uri, reason)
    with input_store.open_read(input_key) as reader:
        check_jsonl(reader, spec.input_uri)
    check_output_schema(spec.output_schema)
    output = open_storage(spec.output_uri)
    check_output_free(output, spec.output_uri, run_id_for(spec))
    check_not_inside_a_run(where, spec.output_uri)
    runs = registry(settings)
    entry, created = runs.claim(spec)
    try:
        store = RunStore(output)
        manifest = store.settle_manifest(effective_manifest(settings, spec, entry.run_id))
        if manifest.run_id != entry.run_id:
            # Another run started on the same empty output at the same moment, and won.
            raise AccessError(
                f"output_uri {spec.output_uri}: holds another run; choose another output"
            )
    except BaseException:
        if created:
            runs.release(entry.run_id)
        raise
    return RegisteredRun(run_id=entry.run_id, output_uri=entry.output_uri, created=created)


def lookup_run(settings: Settings, run_ref: str) -> RunEntry:
    """A run by id, or by its output location (anything containing '/' or ':')."""
    if "/" in run_ref or ":" in run_ref:
        manifest = RunStore(open_storage(run_ref)).manifest()
        return RunEntry(
            run_id=manifest.run_id,
            output_uri=manifest.spec.output_uri,
            input_uri=manifest.spec.input_uri,
            client=manifest.spec.client,
            idempotency_key=manifest.spec.idempotency_key,
        )
    return registry(settings).lookup(run_ref)
