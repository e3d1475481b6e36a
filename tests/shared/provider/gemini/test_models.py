"""Wire models (shared/provider/models.py) read live-captured JSON."""

from __future__ import annotations

import pytest

from shared.provider.gemini import BatchJob, File
from shared.run.states import BatchState

LIVE_FILE = {
    "name": "files/azucr4abxgje",
    "mimeType": "audio/mpeg",
    "sizeBytes": "889389",
    "createTime": "2025-06-24T12:57:41.657029Z",
    "updateTime": "2025-06-24T12:57:41.657029Z",
    "expirationTime": "2025-06-26T12:57:41.592657449Z",
    "sha256Hash": "ZTIzNTQyNDE=",
    "uri": "https://generativelanguage.googleapis.com/v1beta/files/azucr4abxgje",
    "state": "ACTIVE",
    "source": "UPLOADED",
    "someFutureField": 1,
}

LIVE_CREATE = {
    "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp",
    "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": "models/gemini-2.5-flash",
        "displayName": "test-batch-job",
        "createTime": "2025-12-10T18:27:01.407650525Z",
        "updateTime": "2025-12-10T18:27:01.407650525Z",
        "batchStats": {"requestCount": "3", "pendingRequestCount": "3"},
        "state": "BATCH_STATE_PENDING",
        "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp",
    },
}


def test_file_reads_int64_strings_and_ignores_extras():
    file = File.model_validate(LIVE_FILE)
    assert file.size_bytes == 889389
    assert file.mime_type == "audio/mpeg"
    assert file.expiration_time is not None and file.expiration_time.year == 2025
    assert file.sha256_hex == "e2354241"
    assert file.display_name is None


def test_batch_from_live_create_operation():
    job = BatchJob.model_validate(LIVE_CREATE)
    assert job.name == "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp"
    assert job.state is BatchState.PENDING
    assert job.display_name == "test-batch-job"
    assert job.model == "models/gemini-2.5-flash"
    assert job.batch_stats.request_count == 3
    assert job.batch_stats.pending_request_count == 3
    assert job.batch_stats.successful_request_count == 0
    assert not job.done
    assert job.is_live and not job.is_terminal


def finished(output: dict, state: str = "BATCH_STATE_SUCCEEDED") -> dict:
    metadata = {
        **LIVE_CREATE["metadata"],
        "state": state,
        "output": output,
        "endTime": "2025-12-10T19:00:00Z",
        "batchStats": {"requestCount": "3", "successfulRequestCount": "3"},
    }
    return {
        "name": LIVE_CREATE["name"],
        "metadata": metadata,
        "done": True,
        "response": {"@type": "x.GenerateContentBatchOutput", **output},
    }


def test_file_output_makes_succeeded_terminal():
    job = BatchJob.model_validate(finished({"responsesFile": "files/batch-abc"}))
    assert job.responses_file == "files/batch-abc"
    assert job.batch_stats.successful_request_count == 3
    assert job.done and job.is_terminal and not job.is_live
    assert job.end_time is not None


def test_inline_output_is_the_raw_list():
    items = [{"response": {"candidates": []}, "metadata": {"key": "r1"}}, {"error": {"code": 13}}]
    job = BatchJob.model_validate(finished({"inlinedResponses": {"inlinedResponses": items}}))
    assert job.inlined_responses == items
    assert job.is_terminal


def test_succeeded_without_output_is_still_live():
    op = finished({})
    del op["response"]
    del op["metadata"]["output"]
    job = BatchJob.model_validate(op)
    assert job.state is BatchState.SUCCEEDED
    assert job.is_live and not job.is_terminal


@pytest.mark.parametrize(
    ("wire", "state"),
    [
        ("BATCH_STATE_RUNNING", BatchState.RUNNING),
        ("JOB_STATE_RUNNING", BatchState.RUNNING),
        ("JOB_STATE_EXPIRED", BatchState.EXPIRED),
        ("BATCH_STATE_SOMETHING_NEW", BatchState.UNSPECIFIED),
    ],
)
def test_state_spellings(wire, state):
    op = {**LIVE_CREATE, "metadata": {**LIVE_CREATE["metadata"], "state": wire}}
    assert BatchJob.model_validate(op).state is state


@pytest.mark.parametrize(
    "state", ["BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"]
)
def test_other_terminal_states_need_no_output(state):
    op = {
        **LIVE_CREATE,
        "metadata": {**LIVE_CREATE["metadata"], "state": state},
        "done": True,
        "error": {"code": 13, "message": "boom"},
    }
    job = BatchJob.model_validate(op)
    assert job.is_terminal
    assert job.error is not None and job.error.code == 13 and job.error.message == "boom"
