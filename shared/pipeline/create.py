"""Stage 4: create one batch job per part, at most once.

Creating a batch is not idempotent at the provider, so the intent (display name, key,
file) is recorded *before* the call. A task that finds an intent without a job name does
not create blindly: it looks the job up by its display name and adopts it. Only when the
lookup finds nothing is the create sent again. While another worker may still be inside
its create call (the intent is younger than :func:`create_lease_seconds`) the step waits.

What cannot be sent is found before the intent and the admission slot: a model name the
provider's URL cannot carry is a ``SpecError`` (the stage gives up at once: the part's lines
become errors). An answer from the provider (4xx) means no job was made: the in-flight mark
is cleared and the slot released before the error goes up, so nothing waits out a lease or
holds a live-job slot for a job that does not exist. A 4xx other than 429 is final: an
unknown model (404 NOT_FOUND) or a refused request (400 INVALID_ARGUMENT) ends the part.
"""

from __future__ import annotations

from shared import names
from shared.errors import ProviderClientError, RetryLater, RunError, SpecError
from shared.failpoints import failpoint
from shared.limits import check_model
from shared.pipeline.context import RunContext
from shared.provider import ProviderJob
from shared.provider.retry import RetryPolicy
from shared.run import layout
from shared.run.records import JobRecord, PartPlan, utcnow
from shared.settings import Settings

#: Beyond the HTTP timeout: connecting (at most 10 s) and a margin for clocks.
_LEASE_MARGIN_SECONDS = 15.0


def create_lease_seconds(settings: Settings) -> float:
    """Longer than one create call can take: each try the client makes (bounded by the HTTP
    timeout) and the sleeps between tries. Until then an intent's call may still land."""
    tries = settings.http_max_retries + 1
    sleeps = (tries - 1) * RetryPolicy().max_sleep_seconds
    return tries * settings.http_timeout_seconds + sleeps + _LEASE_MARGIN_SECONDS


def create_attempt(ctx: RunContext, shard: int, attempt: int) -> None:
    if ctx.store.cancel_requested():
        return
    record = ctx.store.require_attempt(shard, attempt)
    for part in record.parts:
        create_part(ctx, shard, attempt, part)


def create_part(ctx: RunContext, shard: int, attempt: int, part: PartPlan) -> JobRecord:
    job = ctx.store.job(shard, attempt, part.part)
    if job is not None and job.job_name is not None:
        return job
    upload = ctx.store.upload(shard, attempt, part.part)
    if upload is None or upload.file_name is None:
        raise RunError(f"run {ctx.run_id}: shard {shard}/a{attempt}/p{part.part} not uploaded")
    try:
        check_model(ctx.manifest.model)
    except ValueError as exc:
        raise SpecError(f"run {ctx.run_id}: model: {exc}") from None
    display = layout.display_name(ctx.run_id, shard, attempt, part.part)
    provider = ctx.provider(upload.key_fingerprint)
    # Before the intent: a wait here must not leave an intent that makes the next try wait
    # out the create lease. Idempotent per holder, so a redelivered task counts once.
    holder = names.redis_holder(ctx.run_id, shard, attempt, part.part)
    ctx.admission.acquire_job(
        upload.key_fingerprint, holder, ctx.manifest.model, part.estimated_tokens
    )
    fresh = False
    if job is None:
        job = JobRecord(
            display_name=display,
            key_fingerprint=upload.key_fingerprint,
            model=ctx.manifest.model,
            file_name=upload.file_name,
            request_count=part.requests,
        )
        fresh = ctx.store.create_job(shard, attempt, part.part, job)
        if not fresh:
            job = ctx.store.job(shard, attempt, part.part) or job
            if job.job_name is not None:
                return job
    if not fresh:
        found = provider.find_jobs(display)
        if found:
            earliest = min(found, key=lambda b: b.create_time or utcnow())
            return _record(ctx, shard, attempt, part.part, job, earliest)
        age = (utcnow() - job.intent_at).total_seconds()
        lease = create_lease_seconds(ctx.settings)
        if job.create_in_flight and age < lease:
            raise RetryLater(f"create of {display} may be in flight elsewhere", lease - age)
        job.intent_at = utcnow()  # take the lease over: the earlier creator is gone
        job.create_in_flight = True
        ctx.store.write_job(shard, attempt, part.part, job)
    failpoint("create.after_intent")
    try:
        created = provider.create_job(
            model=ctx.manifest.model,
            kind=ctx.manifest.kind,
            display_name=display,
            file_name=upload.file_name,
            source=lambda offset: ctx.storage.open_read(part.input_key, offset=offset),
        )
    except ProviderClientError:
        # A 4xx (429 included) is an answer: no job was made, so the next try need not wait.
        job.create_in_flight = False
        ctx.store.write_job(shard, attempt, part.part, job)
        ctx.admission.release_job(upload.key_fingerprint, holder)
        raise
    return _record(ctx, shard, attempt, part.part, job, created)


def _record(
    ctx: RunContext, shard: int, attempt: int, part: int, job: JobRecord, made: ProviderJob
) -> JobRecord:
    failpoint("create.after_call")
    job.job_name = made.name
    job.created_at = utcnow()  # our clock: the provider's may differ (emulated, skewed)
    job.state = made.state
    job.create_in_flight = False
    ctx.store.write_job(shard, attempt, part, job)
    return job


