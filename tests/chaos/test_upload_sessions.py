"""A new upload session the server ends (a chunk past the key's storage quota, a session it
lost) is no reason to give the part up: the task retries, finds the session dead and opens
another. Giving up turns every line of the part into an ABANDONED error untried.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.coordination import coordination_redis
from shared.errors import ProviderError
from shared.pipeline.context import RunContext
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.pipeline.upload import upload_part
from shared.run.spec import RunSpec
from shared.settings import Settings
from tests.chaos.conftest import write_input
from tests.fixtures.emulator import EmulatorHandle

pytestmark = pytest.mark.chaos


def test_a_session_ended_by_the_server_is_retried_not_given_up(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    settings = Settings(api_key=emulator.api_key, api_base_url=emulator.base_url,
                        state_uri=str(tmp_path / "state"), http_max_retries=0)
    coordination_redis(settings).flushall()
    source = tmp_path / "requests.jsonl"
    write_input(source, 40)
    spec = RunSpec(input_uri=str(source), output_uri=str(tmp_path / "out"))
    started = register_run(settings, spec)
    ctx = RunContext(settings, started.run_id, started.output_uri)
    plan_run(ctx)
    part = ctx.store.attempt(0, 1).parts[0]  # type: ignore[union-attr]
    emulator.set_faults({"http": [{"endpoint": "files.upload.chunk", "code": 404, "times": 1}]})

    with pytest.raises(ProviderError) as ended:
        upload_part(ctx, 0, 1, part)
    assert ended.value.retryable, f"{type(ended.value).__name__} makes the task give up"

    record = upload_part(ctx, 0, 1, part)  # the task's next try
    assert record.file_name is not None
    assert emulator.stats()["requests"]["files.upload.start"] <= 2
