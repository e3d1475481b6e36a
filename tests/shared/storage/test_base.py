"""The Storage contract (shared/storage/base.py), run against every backend.

``any_storage`` runs each test on a local directory, a memory store and a real S3 server
(SeaweedFS on 127.0.0.1), so the three agree on every behaviour callers rely on.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shared.errors import ObjectNotFoundError
from shared.storage import ObjectInfo, Storage, open_storage

REPO_ROOT = Path(__file__).resolve().parents[3]


# ---- round trips -------------------------------------------------------------------


def test_round_trip_and_replace(any_storage: Storage) -> None:
    any_storage.write_bytes("a/b.json", b'{"x": 1}')
    assert any_storage.read_bytes("a/b.json") == b'{"x": 1}'
    any_storage.write_bytes("a/b.json", b"second")
    assert any_storage.read_bytes("a/b.json") == b"second"


def test_empty_object(any_storage: Storage) -> None:
    with any_storage.open_write("empty"):
        pass
    assert any_storage.read_bytes("empty") == b""
    assert any_storage.size("empty") == 0


def test_reader_is_a_buffered_line_reader(any_storage: Storage) -> None:
    any_storage.write_bytes("lines.jsonl", b"one\ntwo\nthree")
    with any_storage.open_read("lines.jsonl") as reader:
        assert reader.read(2) == b"on"
        assert reader.readline() == b"e\n"
        assert list(reader) == [b"two\n", b"three"]
        assert reader.read() == b""


def test_lines_across_stream_chunks(any_storage: Storage) -> None:
    """Lines that straddle the backend's internal chunk boundaries come back whole."""
    lines = [f'{{"key": "{n}", "pad": "{"x" * (n % 517)}"}}\n'.encode() for n in range(40_000)]
    with any_storage.open_write("big.jsonl") as writer:
        for line in lines:
            writer.write(line)
    with any_storage.open_read("big.jsonl") as reader:
        for expected, got in zip(lines, reader, strict=True):
            assert got == expected


def test_offset_read(any_storage: Storage) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MB: the offset lands past the first chunks
    any_storage.write_bytes("blob", data)
    for offset in (1, 5_000_001, len(data) - 3):
        with any_storage.open_read("blob", offset=offset) as reader:
            assert reader.read() == data[offset:]


def test_offset_at_or_past_the_end_reads_nothing(any_storage: Storage) -> None:
    any_storage.write_bytes("blob", b"12345")
    for offset in (5, 6, 1000):
        with any_storage.open_read("blob", offset=offset) as reader:
            assert reader.read() == b""


def test_negative_offset_is_refused(any_storage: Storage) -> None:
    any_storage.write_bytes("blob", b"12345")
    with pytest.raises(ValueError), any_storage.open_read("blob", offset=-1):
        pass


def test_writer_closed_inside_the_block_still_commits(any_storage: Storage) -> None:
    with any_storage.open_write("closed") as writer:
        writer.write(b"data")
        writer.close()
    assert any_storage.read_bytes("closed") == b"data"


# ---- atomicity ---------------------------------------------------------------------


class BoomError(Exception):
    pass


def test_aborted_write_leaves_no_object(any_storage: Storage) -> None:
    block = b"z" * (1 << 20)
    with pytest.raises(BoomError), any_storage.open_write("partial/out.jsonl") as writer:
        for _ in range(20):  # several multipart parts already uploaded
            writer.write(block)
        raise BoomError
    assert not any_storage.exists("partial/out.jsonl")
    assert list(any_storage.list()) == []


def test_aborted_write_keeps_the_previous_object(any_storage: Storage) -> None:
    any_storage.write_bytes("keep", b"old")
    with pytest.raises(BoomError), any_storage.open_write("keep") as writer:
        writer.write(b"new" * 1000)
        raise BoomError
    assert any_storage.read_bytes("keep") == b"old"


def test_create_if_absent(any_storage: Storage) -> None:
    assert any_storage.create_if_absent("lock/run.json", b"first") is True
    assert any_storage.create_if_absent("lock/run.json", b"second") is False
    assert any_storage.read_bytes("lock/run.json") == b"first"
    assert [item.key for item in any_storage.list()] == ["lock/run.json"]


def test_create_if_absent_threads_race(any_storage: Storage) -> None:
    keys = [f"race/{n:03d}" for n in range(20)]
    barrier = threading.Barrier(4)
    wins: dict[str, list[str]] = {}

    def contend(name: str) -> None:
        barrier.wait()
        wins[name] = [key for key in keys if any_storage.create_if_absent(key, name.encode())]

    threads = [threading.Thread(target=contend, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_one_winner_per_key(any_storage, keys, wins)


def _race_worker(uri: str, name: str, keys: list[str], barrier, results) -> None:  # type: ignore[no-untyped-def]
    storage = open_storage(uri)
    barrier.wait()
    results.put((name, [key for key in keys if storage.create_if_absent(key, name.encode())]))


def test_create_if_absent_processes_race(any_storage: Storage) -> None:
    """Two processes creating the same keys at once: exactly one wins each key."""
    if any_storage.uri.startswith("memory://"):
        pytest.skip("a memory store is private to its process")
    context = multiprocessing.get_context("spawn")
    keys = [f"race/{n:03d}" for n in range(30)]
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(target=_race_worker, args=(any_storage.uri, name, keys, barrier, results))
        for name in ("p1", "p2")
    ]
    for worker in workers:
        worker.start()
    wins = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    _assert_one_winner_per_key(any_storage, keys, wins)


def _assert_one_winner_per_key(
    storage: Storage, keys: list[str], wins: dict[str, list[str]]
) -> None:
    for key in keys:
        winners = [name for name, won in wins.items() if key in won]
        assert len(winners) == 1, (key, winners)
        assert storage.read_bytes(key) == winners[0].encode()


# ---- listing, info, delete -----------------------------------------------------------

# No key is also the "directory" of another (``b`` and ``b/c``): a filesystem cannot hold both.
TRICKY_KEYS = ["A", "a-c", "a.txt", "a/a/z", "a/b", "a/b0", "a0", "ba", "b/c/d/e", "é"]


def test_list_in_key_order(any_storage: Storage) -> None:
    for key in reversed(TRICKY_KEYS):
        any_storage.write_bytes(key, key.encode())
    listed = list(any_storage.list())
    assert [item.key for item in listed] == sorted(TRICKY_KEYS)
    assert all(isinstance(item, ObjectInfo) for item in listed)
    assert {item.key: item.size for item in listed} == {k: len(k.encode()) for k in TRICKY_KEYS}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", ["a-c", "a.txt", "a/a/z", "a/b", "a/b0", "a0"]),
        ("a/", ["a/a/z", "a/b", "a/b0"]),
        ("a/b", ["a/b", "a/b0"]),
        ("b/c", ["b/c/d/e"]),
        ("b/c/d/", ["b/c/d/e"]),
        ("zzz", []),
        ("nothing/here/", []),
    ],
)
def test_list_by_prefix(any_storage: Storage, prefix: str, expected: list[str]) -> None:
    for key in TRICKY_KEYS:
        any_storage.write_bytes(key, b"x")
    assert [item.key for item in any_storage.list(prefix)] == expected


def test_info_size_exists(any_storage: Storage) -> None:
    any_storage.write_bytes("x/y", b"12345")
    info = any_storage.info("x/y")
    assert (info.key, info.size) == ("x/y", 5)
    assert info.etag
    assert info.last_modified is not None
    assert any_storage.size("x/y") == 5
    assert any_storage.exists("x/y")
    assert not any_storage.exists("x")
    assert not any_storage.exists("x/y/z")
    any_storage.write_bytes("x/y", b"1234567")
    assert any_storage.info("x/y").etag != info.etag


def test_not_found_is_mapped(any_storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError):
        any_storage.read_bytes("missing")
    with pytest.raises(ObjectNotFoundError), any_storage.open_read("missing/deep", offset=3):
        pass
    with pytest.raises(ObjectNotFoundError):
        any_storage.info("missing")
    with pytest.raises(ObjectNotFoundError):
        any_storage.size("missing")


def test_delete(any_storage: Storage) -> None:
    any_storage.write_bytes("d/one", b"1")
    any_storage.write_bytes("d/two", b"2")
    any_storage.delete("d/one")
    any_storage.delete("d/one")  # missing is fine
    any_storage.delete("never/was")
    assert [item.key for item in any_storage.list()] == ["d/two"]
    assert any_storage.delete_prefix("d/") == 1
    assert list(any_storage.list()) == []
    any_storage.write_bytes("d/again", b"3")  # the emptied "directory" is usable again
    assert any_storage.read_bytes("d/again") == b"3"


def test_child_scoping(any_storage: Storage) -> None:
    any_storage.write_bytes("outside", b"o")
    any_storage.write_bytes("runs/r1/a", b"a")
    child = any_storage.child("runs/r1")
    assert child.uri == f"{any_storage.uri}/runs/r1"
    child.write_bytes("b/c", b"bc")
    assert [item.key for item in child.list()] == ["a", "b/c"]
    assert any_storage.read_bytes("runs/r1/b/c") == b"bc"
    assert not child.exists("outside")
    assert any_storage.child("runs/").child("r1/").read_bytes("a") == b"a"
    assert open_storage(child.uri).read_bytes("a") == b"a"


@pytest.mark.parametrize("key", ["", "/abs", "trailing/", "a//b", "../up", "a/./b", "a/../b"])
def test_bad_keys_are_refused(any_storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        any_storage.write_bytes(key, b"x")
    with pytest.raises(ValueError):
        any_storage.exists(key)


def test_local_path_only_on_local(any_storage: Storage) -> None:
    any_storage.write_bytes("p/q", b"data")
    path = any_storage.local_path("p/q")
    if any_storage.uri.startswith(("memory://", "s3://")):
        assert path is None
    else:
        assert path is not None
        assert path.read_bytes() == b"data"


def test_repr_is_the_uri(any_storage: Storage) -> None:
    assert repr(any_storage) == f"{type(any_storage).__name__}({any_storage.uri!r})"


# ---- memory stays flat ---------------------------------------------------------------

_STREAM_CHILD = r"""
import hashlib, json, os, resource, sys
from shared.storage import open_storage

uri, megabytes = sys.argv[1], int(sys.argv[2])
storage = open_storage(uri)
storage.write_bytes("warm-up", b"x")  # threads, runtime and connections exist before the baseline
assert storage.read_bytes("warm-up") == b"x"
block = os.urandom(1 << 20)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
written = hashlib.sha256()
with storage.open_write("big.bin") as writer:
    for n in range(megabytes):
        piece = n.to_bytes(8, "big") + block[8:]
        writer.write(piece)
        written.update(piece)
after_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
read, size = hashlib.sha256(), 0
with storage.open_read("big.bin") as reader:
    while piece := reader.read(1 << 20):
        read.update(piece)
        size += len(piece)
after_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "same": written.hexdigest() == read.hexdigest(), "size": size,
    "write_growth_kib": after_write - baseline, "read_growth_kib": after_read - baseline,
}))
"""


def test_streaming_keeps_memory_flat(any_storage: Storage) -> None:
    """A 128 MiB object goes through write and read while peak RSS grows < 64 MiB."""
    if any_storage.uri.startswith("memory://"):
        pytest.skip("a memory store holds its objects in RAM by design")
    megabytes = 128
    result = subprocess.run(
        [sys.executable, "-c", _STREAM_CHILD, any_storage.uri, str(megabytes)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["same"]
    assert figures["size"] == megabytes << 20
    assert figures["write_growth_kib"] < 64 * 1024, figures
    assert figures["read_growth_kib"] < 64 * 1024, figures
