"""A batch's output file appears with the job's results, and never for a job that did not
succeed (its work runs ahead of the visible state)."""

from __future__ import annotations

import time

from tests.emulator.raw_api import create_file_batch, jsonl, request, upload, wait_done
from tests.fixtures.emulator import EmulatorHandle


def listed(client) -> set[str]:  # type: ignore[no-untyped-def]
    return {f["name"] for f in client.get("/v1beta/files").json().get("files", [])}


def test_output_is_hidden_until_success_and_gone_after_a_cancel(emulator_factory) -> None:
    emulator: EmulatorHandle = emulator_factory(
        faults={"jobs": [{"display_name_contains": "slow", "pending_seconds": 1e7}]}
    )
    with emulator.http() as client:
        source = upload(client, jsonl([{"key": "a", "request": request("hi")}]))["name"]
        slow = create_file_batch(client, source, display_name="slow").json()["name"]
        deadline = time.monotonic() + 30
        while emulator.job(slow)["outputFile"] is None:  # the work is done, the job PENDING
            assert time.monotonic() < deadline
            time.sleep(0.05)
        output = emulator.job(slow)["outputFile"]
        assert listed(client) == {source}
        assert client.get(f"/v1beta/{output}").status_code == 404
        client.post(f"/v1beta/{slow}:cancel")
        assert emulator.job(slow)["outputFile"] is None
        assert output not in {f["name"] for f in emulator.files()}

        fast = create_file_batch(client, source, display_name="fast").json()["name"]
        done = wait_done(client, fast)
        assert done["response"]["responsesFile"] in listed(client)
