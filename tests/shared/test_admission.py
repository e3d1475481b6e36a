"""Admission control: pure rules, then the Redis ledger on fakeredis and on a real Redis."""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shared import names
from shared.admission import Admission, KeyLoad, Limits, fits, job_verdict, pick_key
from shared.admission.rules import headroom, orphans, retry_countdown, run_of
from shared.apikeys import fingerprint
from shared.errors import RetryLater
from shared.settings import Settings

REAL_DB = 15  # a database of its own; the test deletes only the keys it made
LIMITS = Limits(max_live_jobs=10, token_budget=1000, file_budget_bytes=100)


# ---- pure rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "request_", "budget", "expected"),
    [
        (0, 5, None, True),
        (999, 5, None, True),
        (0, 5, 10, True),
        (5, 5, 10, True),  # exactly full still fits
        (6, 5, 10, False),
        (0, 50, 10, True),  # larger than the whole budget: admitted alone
        (1, 50, 10, False),  # ... but never next to anything else
    ],
)
def test_fits(current, request_, budget, expected):
    assert fits(current, request_, budget) is expected


def test_job_verdict_names_the_limit():
    limits = Limits(max_live_jobs=2, token_budget=100, file_budget_bytes=1)
    assert job_verdict(1, 50, 50, limits) == "admit"
    assert job_verdict(2, 0, 1, limits) == "jobs"  # slots first, even with tokens free
    assert job_verdict(1, 60, 50, limits) == "tokens"
    assert job_verdict(1, 0, 500, limits) == "admit"
    unlimited = Limits(max_live_jobs=2, token_budget=None, file_budget_bytes=1)
    assert job_verdict(1, 10**12, 10**12, unlimited) == "admit"


def _load(fp, jobs=0, tokens=0, size=0, held=False):
    return KeyLoad(
        key_fingerprint=fp, live_jobs=jobs, enqueued_tokens=tokens, file_bytes=size, held=held
    )


def test_headroom_is_the_scarcest_share():
    assert headroom(_load("a"), LIMITS) == 1.0
    assert headroom(_load("a", jobs=5, size=90), LIMITS) == pytest.approx(0.1)
    assert headroom(_load("a", tokens=750), LIMITS) == pytest.approx(0.25)
    no_budget = Limits(max_live_jobs=10, token_budget=None, file_budget_bytes=100)
    assert headroom(_load("a", tokens=10**9, jobs=2), no_budget) == pytest.approx(0.8)


def test_pick_key_keeps_a_key_the_holder_already_uses():
    loads = [_load("a"), _load("b", jobs=9, size=99, held=True)]
    assert pick_key(loads, LIMITS, tokens=1, size=1) == "b"


def test_pick_key_prefers_room_now_then_headroom_then_pool_order():
    assert pick_key([_load("a"), _load("b")], LIMITS, tokens=1, size=1) == "a"
    assert pick_key([_load("a", size=10), _load("b")], LIMITS, tokens=1, size=1) == "b"
    # "a" has more headroom overall but no job slot left; "b" can take the part now.
    full = [_load("a", jobs=10), _load("b", jobs=9, size=50)]
    assert pick_key(full, LIMITS, tokens=1, size=1) == "b"
    # Nothing fits anywhere: still a key (the acquire will ask to wait), the least loaded.
    assert (
        pick_key([_load("a", jobs=10, size=90), _load("b", jobs=10)], LIMITS, tokens=1, size=20)
        == "b"
    )
    with pytest.raises(ValueError):
        pick_key([], LIMITS, tokens=1, size=1)


def test_retry_countdown_stays_in_bounds_and_spreads():
    rng = random.Random(7)
    values = [retry_countdown(30.0, 60.0, rng) for _ in range(200)]
    assert all(30.0 <= v <= 60.0 for v in values)
    assert max(values) - min(values) > 20.0


def test_run_of_a_holder():
    assert run_of(names.redis_holder("20261126-032500-1a2b3c4d", 3, 1, 0)) == (
        "20261126-032500-1a2b3c4d"
    )
    assert run_of("lonely") == "lonely"


def test_orphans_spare_live_young_and_out_of_scope_holders():
    holdings = {"r1:0:1:0": 0.0, "r1:0:1:1": 0.0, "r1:0:1:2": 9_500.0, "r2:0:1:0": 0.0}
    assert orphans(holdings, {"r1:0:1:1"}, now_ms=10_000, grace_ms=1_000) == [
        "r1:0:1:0",
        "r2:0:1:0",
    ]
    assert orphans(holdings, set(), now_ms=10_000, grace_ms=1_000, runs={"r2"}) == ["r2:0:1:0"]
    assert orphans(holdings, set(), now_ms=10_000, grace_ms=0) == sorted(holdings)


# ---- the ledger, on fakeredis and on a real Redis -----------------------------------------


def _real_redis() -> redis.Redis:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError:
        message = "Redis does not answer on 127.0.0.1:6379 (scripts/services.sh starts it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return redis.Redis(host="127.0.0.1", port=6379, db=REAL_DB, decode_responses=True)


@pytest.fixture(params=["fake", "real"])
def client(request) -> Iterator[redis.Redis]:
    if request.param == "fake":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return
    real = _real_redis()
    yield real
    real.close()


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def new_fp(client) -> Iterator[Callable[[], str]]:
    """Fresh key fingerprints (of random keys); their Redis keys are deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        fp = fingerprint(SecretStr(f"AIza-test-{uuid.uuid4().hex}"))
        made.append(fp)
        return fp

    yield make
    for fp in made:
        for key in client.scan_iter(match=f"{names.REDIS_PREFIX}{{{fp}}}:*"):
            client.delete(key)


@pytest.fixture
def make_admission(client) -> Callable[..., Admission]:
    def make(clock=None, job_ttl=3600.0, file_ttl=3600.0, **overrides) -> Admission:
        return Admission(
            client,
            Settings(**overrides),
            job_ttl_seconds=job_ttl,
            file_ttl_seconds=file_ttl,
            retry_seconds=(30.0, 60.0),
            clock=clock,
            rng=random.Random(1),
        )

    return make


def test_live_job_limit_asks_to_wait(make_admission, new_fp):
    admission = make_admission(max_live_jobs_per_key=2)
    fp = new_fp()
    assert admission.acquire_job(fp, "r:0:1:0", "m", 10).fresh
    assert admission.acquire_job(fp, "r:0:1:1", "m", 10).fresh
    with pytest.raises(RetryLater) as caught:
        admission.acquire_job(fp, "r:0:1:2", "m", 10)
    assert 30.0 <= caught.value.countdown <= 60.0
    assert fp in caught.value.reason and "2 live batch jobs" in caught.value.reason
    assert admission.release_job(fp, "r:0:1:0")
    assert admission.acquire_job(fp, "r:0:1:2", "m", 10).fresh
    assert admission.snapshot(fp).live_jobs == 2


def test_acquire_and_release_are_idempotent(make_admission, new_fp):
    admission = make_admission(max_live_jobs_per_key=2, enqueued_token_budget=100)
    fp = new_fp()
    first = admission.acquire_job(fp, "r:0:1:0", "m", 40)
    again = admission.acquire_job(fp, "r:0:1:0", "m", 40)
    assert (first.fresh, again.fresh) == (True, False)
    snap = admission.snapshot(fp)
    assert (snap.live_jobs, snap.tokens_by_model) == (1, {"m": 40})
    # A held slot is "held" even when the key is full: a redelivery never waits on itself.
    admission.acquire_job(fp, "r:0:1:1", "m", 60)
    assert not admission.acquire_job(fp, "r:0:1:0", "m", 40).fresh
    assert admission.release_job(fp, "r:0:1:0") is True
    assert admission.release_job(fp, "r:0:1:0") is False
    assert admission.release_job(fp, "never:0:1:0") is False
    snap = admission.snapshot(fp)
    assert (snap.live_jobs, snap.tokens_by_model) == (1, {"m": 60})

    assert admission.acquire_file_bytes(fp, "r:0:1:0", 7).fresh
    assert not admission.acquire_file_bytes(fp, "r:0:1:0", 7).fresh
    assert admission.snapshot(fp).file_bytes == 7
    assert admission.release_file_bytes(fp, "r:0:1:0") is True
    assert admission.release_file_bytes(fp, "r:0:1:0") is False
    assert admission.snapshot(fp).file_bytes == 0


def test_token_budget_is_per_model(make_admission, new_fp):
    admission = make_admission(enqueued_token_budget=100)
    fp = new_fp()
    admission.acquire_job(fp, "r:0:1:0", "flash", 70)
    with pytest.raises(RetryLater, match="70 tokens of flash"):
        admission.acquire_job(fp, "r:0:1:1", "flash", 31)
    admission.acquire_job(fp, "r:0:1:2", "flash", 30)  # exactly up to the budget
    admission.acquire_job(fp, "r:0:1:3", "pro", 100)  # another model, another budget
    assert admission.snapshot(fp).tokens_by_model == {"flash": 100, "pro": 100}
    other = new_fp()
    admission.acquire_job(other, "r:0:1:1", "flash", 100)  # another key, another budget


def test_a_part_over_the_whole_budget_runs_alone(make_admission, new_fp):
    admission = make_admission(enqueued_token_budget=100)
    fp = new_fp()
    admission.acquire_job(fp, "small:0:1:0", "m", 1)
    with pytest.raises(RetryLater):
        admission.acquire_job(fp, "big:0:1:0", "m", 500)
    admission.release_job(fp, "small:0:1:0")
    assert admission.acquire_job(fp, "big:0:1:0", "m", 500).fresh
    with pytest.raises(RetryLater, match="500 tokens of m enqueued"):
        admission.acquire_job(fp, "small:0:1:1", "m", 1)
    admission.acquire_job(fp, "other:0:1:0", "m2", 1)  # other models are not held back
    admission.release_job(fp, "big:0:1:0")
    assert admission.snapshot(fp).tokens_by_model == {"m2": 1}


def test_file_storage_budget(make_admission, new_fp):
    admission = make_admission(file_storage_budget_bytes=1000)
    fp = new_fp()
    admission.acquire_file_bytes(fp, "r:0:1:0", 600)
    with pytest.raises(RetryLater, match="holds 600 bytes") as caught:
        admission.acquire_file_bytes(fp, "r:0:1:1", 401)
    assert 30.0 <= caught.value.countdown <= 60.0
    admission.acquire_file_bytes(fp, "r:0:1:1", 400)
    admission.release_file_bytes(fp, "r:0:1:0")
    admission.acquire_file_bytes(fp, "r:0:1:2", 600)
    snap = admission.snapshot(fp)
    assert snap.file_bytes == 1000
    assert {h.holder: h.amount for h in snap.files} == {"r:0:1:1": 400, "r:0:1:2": 600}


def test_a_leaked_holding_expires_after_its_ttl(make_admission, new_fp):
    clock = Clock()
    admission = make_admission(
        clock=clock,
        job_ttl=100.0,
        file_ttl=50.0,
        max_live_jobs_per_key=1,
        file_storage_budget_bytes=10,
    )
    fp = new_fp()
    admission.acquire_job(fp, "dead:0:1:0", "m", 5)  # its worker dies before recording
    admission.acquire_file_bytes(fp, "dead:0:1:0", 10)
    clock.advance(49.0)
    with pytest.raises(RetryLater):
        admission.acquire_file_bytes(fp, "next:0:1:0", 1)
    clock.advance(2.0)  # 51 s: the file holding is gone, the job holding not yet
    assert admission.acquire_file_bytes(fp, "next:0:1:0", 1).fresh
    with pytest.raises(RetryLater):
        admission.acquire_job(fp, "next:0:1:0", "m", 5)
    clock.advance(50.0)  # 101 s
    assert admission.acquire_job(fp, "next:0:1:0", "m", 5).fresh
    snap = admission.snapshot(fp)
    assert [h.holder for h in snap.jobs] == ["next:0:1:0"]
    assert snap.tokens_by_model == {"m": 5}
    assert snap.file_bytes == 1


def test_reacquiring_keeps_a_holding_alive(make_admission, new_fp):
    clock = Clock()
    admission = make_admission(clock=clock, job_ttl=100.0)
    fp = new_fp()
    admission.acquire_job(fp, "r:0:1:0", "m", 5)
    clock.advance(80.0)
    assert not admission.acquire_job(fp, "r:0:1:0", "m", 5).fresh
    clock.advance(80.0)  # 160 s after the first acquire, 80 s after the last
    assert admission.snapshot(fp).live_jobs == 1


def test_ttl_on_the_servers_clock(make_admission, new_fp):
    admission = make_admission(job_ttl=0.2, max_live_jobs_per_key=1)
    fp = new_fp()
    admission.acquire_job(fp, "dead:0:1:0", "m", 5)
    deadline = time.monotonic() + 10.0
    while admission.snapshot(fp).live_jobs:  # gone once 0.2 s have passed on the server
        assert time.monotonic() < deadline, "the holding never expired"
        time.sleep(0.05)
    assert admission.acquire_job(fp, "next:0:1:0", "m", 5).fresh


def test_reconcile_drops_orphans_only(make_admission, new_fp):
    clock = Clock()
    admission = make_admission(clock=clock)
    fp = new_fp()
    for holder in ("r1:0:1:0", "r1:0:1:1", "r2:0:1:0"):
        admission.acquire_job(fp, holder, "m", 5)
        admission.acquire_file_bytes(fp, holder, 1)
    clock.advance(700.0)
    admission.acquire_job(fp, "r1:0:1:9", "m", 5)  # young: its record may not exist yet

    scoped = admission.reconcile(fp, jobs={"r1:0:1:1"}, files=set(), runs={"r1"})
    assert scoped.jobs == ["r1:0:1:0"]
    assert scoped.files == ["r1:0:1:0", "r1:0:1:1"]

    everything = admission.reconcile(fp, jobs={"r1:0:1:1"}, files={"r2:0:1:0"})
    assert everything.jobs == ["r2:0:1:0"]
    assert everything.files == []
    snap = admission.snapshot(fp)
    assert sorted(h.holder for h in snap.jobs) == ["r1:0:1:1", "r1:0:1:9"]
    assert snap.tokens_by_model == {"m": 10}
    assert [h.holder for h in snap.files] == ["r2:0:1:0"]
    assert snap.file_bytes == 1
    assert admission.reconcile(fp, jobs={"r1:0:1:1"}, files={"r2:0:1:0"}).jobs == []


def test_reconcile_spares_a_holding_reacquired_while_it_ran(client, new_fp):
    clock = Clock()

    class Racing(Admission):
        """Between reading and dropping, the holder's redelivered task acquires again."""

        def _read(self, key_fingerprint):
            raw = super()._read(key_fingerprint)
            clock.advance(1.0)
            self.acquire_job(key_fingerprint, "r:0:1:0", "m", 5)
            return raw

    admission = Racing(client, Settings(), clock=clock)
    fp = new_fp()
    admission.acquire_job(fp, "r:0:1:0", "m", 5)
    clock.advance(3600.0)
    assert admission.reconcile(fp, jobs=set(), files=set()).jobs == []
    assert admission.snapshot(fp).live_jobs == 1


def test_choose_key_spreads_a_run_across_the_pool(make_admission, new_fp):
    admission = make_admission(file_storage_budget_bytes=100)
    pool = [new_fp(), new_fp(), new_fp()]
    chosen = []
    for part in range(9):
        holder = names.redis_holder("run", 0, 1, part)
        fp = admission.choose_key(pool, model="m", tokens=10, size=10, holder=holder)
        admission.acquire_file_bytes(fp, holder, 10)
        chosen.append(fp)
    assert {fp: chosen.count(fp) for fp in pool} == dict.fromkeys(pool, 3)
    # A redelivered upload keeps the key it claimed, even though others have more room now.
    holder = names.redis_holder("run", 0, 1, 0)
    admission.release_file_bytes(pool[1], names.redis_holder("run", 0, 1, 1))
    assert admission.choose_key(pool, model="m", tokens=10, size=10, holder=holder) == chosen[0]


def test_choose_key_avoids_a_key_without_job_slots(make_admission, new_fp):
    admission = make_admission(max_live_jobs_per_key=1)
    busy, idle = new_fp(), new_fp()
    admission.acquire_job(busy, "r:0:1:0", "m", 1)
    admission.acquire_file_bytes(idle, "r:0:1:0", 10**9)  # more bytes, but a free slot
    assert admission.choose_key([busy, idle], model="m", tokens=1, size=1) == idle


def test_no_api_key_reaches_redis(client, make_admission):
    secret = f"AIzaSy-very-secret-{uuid.uuid4().hex}"
    fp = fingerprint(SecretStr(secret))
    admission = make_admission(max_live_jobs_per_key=1, enqueued_token_budget=10)
    try:
        admission.acquire_job(fp, "r:0:1:0", "gemini-2.5-flash", 5)
        admission.acquire_file_bytes(fp, "r:0:1:0", 3)
        with pytest.raises(RetryLater) as caught:
            admission.acquire_job(fp, "r:0:1:1", "gemini-2.5-flash", 5)
        assert secret not in str(caught.value)
        with pytest.raises(ValueError, match="fingerprint") as refused:
            admission.acquire_job(secret, "r:0:1:2", "m", 1)
        assert secret not in str(refused.value)

        seen: list[str] = []
        for key in client.scan_iter(match=f"{names.REDIS_PREFIX}*"):
            seen.append(key)
            kind = client.type(key)
            if kind == "string":
                seen.append(client.get(key))
            elif kind == "hash":
                seen.extend(f"{k}={v}" for k, v in client.hgetall(key).items())
            elif kind == "zset":
                seen.extend(client.zrange(key, 0, -1))
        assert any(fp in text for text in seen)
        assert not any(secret in text for text in seen)
        assert secret not in admission.snapshot(fp).model_dump_json()
    finally:
        for key in client.scan_iter(match=f"{names.REDIS_PREFIX}{{{fp}}}:*"):
            client.delete(key)


@hyp_settings(max_examples=60, deadline=None)
@given(
    live=st.integers(0, 5),
    enqueued=st.integers(0, 300),
    tokens=st.integers(0, 300),
    max_jobs=st.integers(1, 5),
    budget=st.one_of(st.none(), st.integers(1, 200)),
)
def test_lua_and_python_agree_on_jobs(live, enqueued, tokens, max_jobs, budget):
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    admission = Admission(
        client, Settings(max_live_jobs_per_key=max_jobs, enqueued_token_budget=budget)
    )
    fp = "fp-0123456789ab"
    for index in range(live):
        share = enqueued // live + (enqueued % live if index == 0 else 0)
        client.zadd(names.redis_live_jobs(fp), {f"old:{index}": time.time() * 1000})
        client.hset(names.redis_job_claims(fp), f"old:{index}", f"{share} m")
    if live and enqueued:
        client.hset(names.redis_tokens(fp), "m", enqueued)
    enqueued = enqueued if live else 0
    expected = job_verdict(live, enqueued, tokens, admission.limits)
    try:
        admission.acquire_job(fp, "new:0:1:0", "m", tokens)
        verdict = "admit"
    except RetryLater as exc:
        verdict = "jobs" if "live batch jobs" in exc.reason else "tokens"
    assert verdict == expected


# ---- races ---------------------------------------------------------------------------------


def test_threads_racing_for_slots_on_fakeredis():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    admission = Admission(client, Settings(max_live_jobs_per_key=5, file_storage_budget_bytes=7))
    fp = "fp-0123456789ab"
    barrier = threading.Barrier(12)
    admitted: list[str] = []
    files: list[str] = []

    def race(index: int) -> None:
        barrier.wait()
        for attempt in range(3):
            holder = f"t{index}:0:{attempt}:0"
            try:
                admission.acquire_job(fp, holder, "m", 1)
                admitted.append(holder)
            except RetryLater:
                pass
            try:
                admission.acquire_file_bytes(fp, holder, 1)
                files.append(holder)
            except RetryLater:
                pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(files)) == (5, 7)
    snap = admission.snapshot(fp)
    assert sorted(h.holder for h in snap.jobs) == sorted(admitted)
    assert (snap.tokens_by_model, snap.file_bytes) == ({"m": 5}, 7)


def _race_in_process(fp: str, index: int, barrier, results) -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, db=REAL_DB, decode_responses=True)
    admission = Admission(
        client,
        Settings(
            max_live_jobs_per_key=10, enqueued_token_budget=1000, file_storage_budget_bytes=25
        ),
    )
    barrier.wait()
    won = []
    for attempt in range(4):
        holder = f"p{index}:0:{attempt}:0"
        for kind, acquire in (
            ("job", lambda h=holder: admission.acquire_job(fp, h, "m", 1)),
            ("file", lambda h=holder: admission.acquire_file_bytes(fp, h, 1)),
        ):
            try:
                acquire()
                acquire()  # a redelivery in the middle of the race counts once
                won.append((kind, holder))
            except RetryLater:
                pass
    results.put(won)
    client.close()


def test_processes_racing_for_slots_on_real_redis():
    client = _real_redis()
    fp = fingerprint(SecretStr(f"AIza-test-{uuid.uuid4().hex}"))
    try:
        _race(client, fp)
    finally:
        for key in client.scan_iter(match=f"{names.REDIS_PREFIX}{{{fp}}}:*"):
            client.delete(key)
        client.close()


def _race(client: redis.Redis, fp: str) -> None:
    context = multiprocessing.get_context("fork")
    workers = 12
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_race_in_process, args=(fp, index, barrier, results))
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    won = [item for _ in processes for item in results.get(timeout=60)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    jobs = sorted(holder for kind, holder in won if kind == "job")
    files = sorted(holder for kind, holder in won if kind == "file")
    assert (len(jobs), len(files)) == (10, 25)
    admission = Admission(client, Settings(max_live_jobs_per_key=10))
    snap = admission.snapshot(fp)
    assert sorted(h.holder for h in snap.jobs) == jobs
    assert sorted(h.holder for h in snap.files) == files
    assert (snap.tokens_by_model, snap.file_bytes) == ({"m": 10}, 25)
