"""``shardline estimate`` and ``--dry-run``: what a run would send, cost and take, before it
exists. Nothing is uploaded and nothing is registered.

The input is split exactly as the plan would (same validation, same shards) into a
temporary local directory, the request cache is consulted (read only) and the budget
applied, so the figures are the plan's own: lines, what the cache would answer, estimated
tokens, cost at the batch price, shards and jobs. The time is a lower bound from the
provider's limits as configured (live jobs per key, enqueued tokens, file storage): the
jobs go in *waves*, and a wave takes at least ``SHARDLINE_ESTIMATE_JOB_SECONDS`` (10 min by
default; the provider's target is 24 h, and a job still pending at 48 h expires).
"""

from __future__ import annotations

import math
import tempfile

from pydantic import BaseModel

from shared.budget import part_estimate
from shared.cache import RequestCache, namespace
from shared.jsonl import split_input
from shared.pipeline.screen import screen, to_send
from shared.pipeline.start import effective_manifest
from shared.pricing import estimate_cost
from shared.run.records import CostEstimate, ShardPlan, TokenTotals
from shared.run.spec import RunSpec
from shared.settings import Settings
from shared.storage import open_storage, split_uri

PROVIDER_TARGET_SECONDS = 24 * 3600


class Estimate(BaseModel):
    input_uri: str
    model: str
    kind: str
    lines: int
    accepted: int
    rejected: int
    cached: int
    held: int
    to_send: int
    estimated_input_tokens: int
    estimated_output_tokens: int
    cost: CostEstimate
    interactive_cost: CostEstimate
    max_cost: float | None
    shards: int
    jobs: int
    waves: int
    limited_by: str
    best_seconds: float
    provider_target_seconds: float


def estimate_run(settings: Settings, spec: RunSpec) -> Estimate:
    manifest = effective_manifest(settings, spec, "estimate")
    store, key = split_uri(spec.input_uri)
    cache = (RequestCache(open_storage(settings.cache_location())) if spec.cache else None)
    with tempfile.TemporaryDirectory(prefix="shardline-estimate-") as work:
        staging = open_storage(work)
        with store.open_read(key) as reader:
            result = split_input(
                reader,
                staging,
                kind=manifest.kind,
                shard_max_bytes=manifest.shard_max_bytes,
                shard_max_requests=manifest.shard_max_requests,
                source=spec.input_uri,
                tmp_dir=work,
            )
        screened = screen(
            staging,
            [ShardPlan.model_validate(shard.model_dump()) for shard in result.shards],
            cache=cache,
            space=namespace(endpoint=settings.api_base_url, model=manifest.model,
                            kind=manifest.kind),
            model=manifest.model,
            max_cost=spec.max_cost,
            output_tokens=settings.estimate_output_tokens,
        )
    sent = [shard for shard in screened.shards if to_send(shard)]
    requests = sum(to_send(shard) for shard in sent)
    tokens = sum(shard.estimated_tokens for shard in sent)
    output = requests * settings.estimate_output_tokens
    cost = part_estimate(manifest.model, requests, tokens, settings.estimate_output_tokens)
    interactive = estimate_cost(
        manifest.model, TokenTotals(prompt=tokens, candidates=output), interactive=True
    )
    waves, limited_by = _waves(settings, len(sent), tokens, sum(s.bytes for s in sent))
    return Estimate(
        input_uri=spec.input_uri,
        model=manifest.model,
        kind=manifest.kind,
        lines=result.lines,
        accepted=result.accepted,
        rejected=result.rejected,
        cached=screened.cached,
        held=screened.held,
        to_send=requests,
        estimated_input_tokens=tokens,
        estimated_output_tokens=output,
        cost=cost,
        interactive_cost=interactive,
        max_cost=spec.max_cost,
        shards=len(screened.shards),
        jobs=len(sent),
        waves=waves,
        limited_by=limited_by,
        best_seconds=waves * settings.estimate_job_seconds,
        provider_target_seconds=waves * PROVIDER_TARGET_SECONDS,
    )


def _waves(settings: Settings, jobs: int, tokens: int, size: int) -> tuple[int, str]:
    """How many rounds of jobs the limits allow at least, and which limit decides."""
    if not jobs:
        return 0, "nothing to send"
    # The provider's limits are per Google Cloud project: keys of one project add nothing.
    projects = max(1, len({project for _, project in settings.key_projects()}))
    live = settings.max_live_jobs_per_project
    files = settings.file_storage_budget_bytes * projects
    bounds = {
        f"live jobs ({live} per project x {projects} project(s))": math.ceil(
            jobs / (live * projects)
        ),
        f"file storage ({files:,} bytes)": math.ceil(size / files),
    }
    if settings.enqueued_token_budget:
        budget = settings.enqueued_token_budget * projects
        bounds[f"enqueued tokens ({budget:,})"] = math.ceil(tokens / budget)
    limit, waves = max(bounds.items(), key=lambda item: item[1])
    return max(1, waves), limit
