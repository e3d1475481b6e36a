"""Admission per Google Cloud project: keys of one project share its limits, keys of
different projects add theirs (``label:KEY`` entries of ``SHARDLINE_API_KEYS``)."""

from __future__ import annotations

import fakeredis
import pytest
from pydantic import SecretStr, ValidationError

from shared import names
from shared.admission import Admission
from shared.apikeys import fingerprint
from shared.errors import RetryLater
from shared.settings import DEFAULT_PROJECT, Settings

K1, K2, K3 = "key-one-secret", "key-two-secret", "key-three-secret"
FP1, FP2, FP3 = (fingerprint(SecretStr(k)) for k in (K1, K2, K3))


def admission(**settings: object) -> Admission:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return Admission(client, Settings(**settings), retry_seconds=(1.0, 2.0))


# ---- settings ----------------------------------------------------------------------------


def test_labels_group_keys_and_unlabelled_keys_are_one_project(env) -> None:
    env(SHARDLINE_API_KEY=K1, SHARDLINE_API_KEYS=f"projA:{K2}, {K3}, projB:{K1}")
    pairs = [(k.get_secret_value(), p) for k, p in Settings().key_projects()]
    # the primary key takes the label it is listed with; K3 has none
    assert pairs == [(K1, "projB"), (K2, "projA"), (K3, DEFAULT_PROJECT)]
    assert [k.get_secret_value() for k in Settings().key_pool()] == [K1, K2, K3]
    env(SHARDLINE_API_KEYS=f"{K2},{K3}")
    assert {p for _, p in Settings().key_projects()} == {DEFAULT_PROJECT}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (f"bad label:{K1}", "entry 1: the part before ':' must be a project label"),
        (f"{K2},projA:", "entry 2: no key after the project label"),
        (f"projA:{K1},projB:{K1}", "entry 2: the same key is listed with projects"),
    ],
)
def test_bad_pools_name_the_entry_never_the_key(env, entries: str, message: str) -> None:
    env(SHARDLINE_API_KEYS=entries)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_old_per_key_name_still_sets_the_project_limit(env) -> None:
    env(SHARDLINE_MAX_LIVE_JOBS_PER_KEY="7")
    assert Settings().max_live_jobs_per_project == 7
    env(SHARDLINE_MAX_LIVE_JOBS_PER_PROJECT="9")
    assert Settings().max_live_jobs_per_project == 9


# ---- the ledger --------------------------------------------------------------------------


def test_keys_of_one_project_share_the_live_job_limit() -> None:
    ledger = admission(api_keys=[f"projA:{K1}", f"projA:{K2}", f"projB:{K3}"],
                       max_live_jobs_per_project=2)
    ledger.acquire_job(FP1, "r:0:1:0", "m", 1)
    ledger.acquire_job(FP2, "r:0:1:1", "m", 1)
    with pytest.raises(RetryLater) as caught:
        ledger.acquire_job(FP2, "r:0:1:2", "m", 1)  # the second key adds no capacity
    assert "project 'projA'" in caught.value.reason and "2 live batch jobs" in caught.value.reason
    assert "secret" not in caught.value.reason
    ledger.acquire_job(FP3, "r:0:1:2", "m", 1)  # projB has its own
    ledger.acquire_job(FP3, "r:0:1:3", "m", 1)
    snap = ledger.snapshot(FP2)
    assert (snap.project, snap.live_jobs, snap.key_fingerprints) == ("projA", 2, [FP1, FP2])
    # a release through either key of the project frees the slot
    assert ledger.release_job(FP2, "r:0:1:0")
    ledger.acquire_job(FP1, "r:0:1:4", "m", 1)


def test_unlabelled_keys_are_one_project_by_default() -> None:
    ledger = admission(api_key=K1, api_keys=[K2], max_live_jobs_per_project=1,
                       file_storage_budget_bytes=10)
    ledger.acquire_job(FP1, "r:0:1:0", "m", 1)
    with pytest.raises(RetryLater):
        ledger.acquire_job(FP2, "r:0:1:1", "m", 1)
    ledger.acquire_file_bytes(FP2, "r:0:1:0", 8)
    with pytest.raises(RetryLater, match="bytes of uploaded files"):
        ledger.acquire_file_bytes(FP1, "r:0:1:1", 8)
    assert ledger.snapshot(FP1).project == DEFAULT_PROJECT


def test_tokens_and_file_bytes_are_counted_per_project() -> None:
    ledger = admission(api_keys=[f"projA:{K1}", f"projA:{K2}", f"projB:{K3}"],
                       enqueued_token_budget=100, file_storage_budget_bytes=100)
    ledger.acquire_job(FP1, "r:0:1:0", "m", 60)
    with pytest.raises(RetryLater, match="tokens of m enqueued"):
        ledger.acquire_job(FP2, "r:0:1:1", "m", 60)
    ledger.acquire_job(FP3, "r:0:1:1", "m", 60)
    ledger.acquire_file_bytes(FP2, "r:0:1:0", 70)
    with pytest.raises(RetryLater):
        ledger.acquire_file_bytes(FP1, "r:0:1:1", 70)
    ledger.acquire_file_bytes(FP3, "r:0:1:1", 70)
    assert ledger.snapshot(FP1).tokens_by_model == {"m": 60}
    assert ledger.snapshot(FP1).file_bytes == ledger.snapshot(FP2).file_bytes == 70


def test_choose_key_moves_to_another_project_not_another_key_of_the_same() -> None:
    ledger = admission(api_keys=[f"projA:{K1}", f"projA:{K2}", f"projB:{K3}"],
                       max_live_jobs_per_project=2)
    ledger.acquire_job(FP1, "r:0:1:0", "m", 1)
    # projA is half full (through K1); K2 shows the same load, so projB's key wins
    assert ledger.choose_key([FP1, FP2, FP3], model="m", tokens=1, size=1) == FP3
    loads = ledger.loads([FP1, FP2, FP3], model="m", holder="r:0:1:0")
    assert [(load.live_jobs, load.held) for load in loads] == [(1, True), (1, True), (0, False)]
    # a holder that holds in projA stays in projA
    assert ledger.choose_key([FP3, FP2], model="m", tokens=1, size=1, holder="r:0:1:0") == FP2


def test_reconcile_all_pools_the_census_of_a_projects_keys() -> None:
    ledger = admission(api_keys=[f"projA:{K1}", f"projA:{K2}", f"projB:{K3}"])
    ledger.acquire_job(FP1, "r:0:1:0", "m", 1)  # acquired through K1, recorded under K2
    ledger.acquire_job(FP2, "r:0:1:1", "m", 1)  # nobody vouches: an orphan
    ledger.acquire_file_bytes(FP3, "r:0:1:2", 5)
    dropped = ledger.reconcile_all(
        [FP1, FP2, FP3],
        jobs={FP2: {"r:0:1:0"}},
        files={FP3: {"r:0:1:2"}},
        grace_seconds=0,
    )
    assert (dropped.jobs, dropped.files) == (["r:0:1:1"], [])
    assert [h.holder for h in ledger.snapshot(FP1).jobs] == ["r:0:1:0"]


def test_redis_names_projects_never_keys() -> None:
    ledger = admission(api_keys=[f"projA:{K1}"])
    ledger.acquire_job(FP1, "r:0:1:0", "m", 1)
    keys = set(ledger.redis.scan_iter(match=f"{names.REDIS_PREFIX}*"))
    assert names.redis_live_jobs("project-projA") in keys
    assert not any("secret" in key for key in keys)
