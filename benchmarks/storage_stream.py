"""Stream one generated object through write and read on local storage and on S3.

    .venv/bin/python benchmarks/storage_stream.py [--size-mb 1024] [--rounds 2] [--s3-endpoint URL]

Prints MB/s (best of the rounds; ours and the reference alternate, so page-cache and
writeback state hit both alike) and the peak RSS growth of each phase (sampled every 5 ms),
beside references run in the same
process on the same data: plain ``open``/``write``/``fsync`` and ``read`` of a file, a
``shutil.copyfileobj`` file-to-file copy (what ``cp`` does), and for S3 raw obstore
(``put`` from a file, ``get(...).stream()`` chunks) without our file-object layer.

S3 is a SeaweedFS ``weed mini`` started through ``scripts/seaweedfs.sh`` on free loopback
ports in a temp directory (or the server at ``--s3-endpoint``, credentials from AWS_*).
Every file and object is deleted at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import obstore
import psutil

from shared.storage import LocalStorage, ObstoreStorage, Storage, open_storage

MIB = 1 << 20
REPO = Path(__file__).resolve().parents[1]


class PeakRss:
    """Samples this process's RSS every 5 ms; ``growth`` is the peak above the start."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MIB


def blocks(size_mb: int) -> Iterator[bytes]:
    """``size_mb`` distinct 1 MiB blocks (a counter stamped on one random block)."""
    base = os.urandom(MIB)
    for n in range(size_mb):
        yield n.to_bytes(8, "big") + base[8:]


class Table:
    """Best rate and largest RSS growth of each phase over the rounds."""

    def __init__(self, size_mb: int) -> None:
        self.size_mb = size_mb
        self.rows: dict[str, tuple[float, float]] = {}

    def measure(self, label: str, action: Callable[[], object]) -> None:
        with PeakRss() as rss:
            began = time.perf_counter()
            action()
            seconds = time.perf_counter() - began
        rate = self.size_mb * MIB / 1e6 / seconds
        print(f"  {label}: {rate:.0f} MB/s, +{rss.growth_mb:.1f} MB RSS", flush=True)
        best, growth = self.rows.get(label, (0.0, 0.0))
        self.rows[label] = (max(best, rate), max(growth, rss.growth_mb))

    def rate(self, label: str) -> float:
        return self.rows[label][0]

    def markdown(self) -> str:
        lines = ["| phase | MB/s (best) | peak RSS growth MB (max) |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {r:.0f} | {g:.1f} |" for k, (r, g) in self.rows.items()]
        return "\n".join(lines)


def write_storage(storage: Storage, key: str, size_mb: int) -> None:
    with storage.open_write(key) as writer:
        for block in blocks(size_mb):
            writer.write(block)


def read_storage(storage: Storage, key: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with storage.open_read(key) as reader:
        while block := reader.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def write_plain(path: Path, size_mb: int) -> None:
    with open(path, "wb") as out:
        for block in blocks(size_mb):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def read_plain(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as source:
        while block := source.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def copy_plain(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, MIB)
        dst.flush()
        os.fsync(dst.fileno())


def read_obstore_raw(storage: ObstoreStorage, key: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    store = storage._store
    for chunk in obstore.get(store, f"{storage._prefix}/{key}").stream(min_chunk_size=4 * MIB):
        digest.update(chunk)
    return digest.hexdigest()


def put_obstore_raw(storage: ObstoreStorage, key: str, path: Path) -> None:
    obstore.put(storage._store, f"{storage._prefix}/{key}", path, chunk_size=8 * MIB)


def free_port_pair() -> int:
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10000 <= 65535:
            with socket.socket() as twin:
                try:
                    twin.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


@contextmanager
def seaweedfs(data_dir: Path) -> Iterator[str]:
    ports = {name: str(free_port_pair()) for name in ("S3", "MASTER", "VOLUME", "FILER", "ADMIN")}
    env = {**os.environ, **{f"SEAWEEDFS_{name}_PORT": port for name, port in ports.items()}}
    script = str(REPO / "scripts" / "seaweedfs.sh")
    subprocess.run(["bash", script, "start", str(data_dir)], env=env, check=True)
    try:
        yield f"http://127.0.0.1:{ports['S3']}"
    finally:
        subprocess.run(["bash", script, "stop", str(data_dir)], env=env, check=False)


PLAIN_WRITE = "reference: plain file write + fsync"
LOCAL_WRITE = "local: open_write"
PLAIN_READ = "reference: plain file read"
LOCAL_READ = "local: open_read"
COPY = "reference: shutil.copyfileobj file to file + fsync"
RAW_PUT = "reference: obstore.put(file path)"
S3_WRITE = "s3: open_write (8 MiB parts x 4)"
RAW_GET = "reference: obstore.get().stream()"
S3_READ = "s3: open_read"


def run(size_mb: int, rounds: int, s3_endpoint: str | None) -> None:
    table = Table(size_mb)
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        root = Path(tmp)
        plain, copy = root / "plain.bin", root / "copy.bin"
        local = LocalStorage(root / "local")
        for n in range(rounds):
            print(f"local, round {n + 1}", flush=True)
            table.measure(PLAIN_WRITE, lambda: write_plain(plain, size_mb))
            table.measure(LOCAL_WRITE, lambda: write_storage(local, "obj.bin", size_mb))
            table.measure(PLAIN_READ, lambda: read_plain(plain))
            table.measure(LOCAL_READ, lambda: read_storage(local, "obj.bin"))
            table.measure(COPY, lambda: copy_plain(plain, copy))
            copy.unlink()
            local.delete("obj.bin")

        with (
            seaweedfs(root / "seaweedfs")
            if s3_endpoint is None
            else _given(s3_endpoint) as endpoint
        ):
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            os.environ.setdefault("AWS_REGION", "us-east-1")
            if s3_endpoint is None:  # our own server: the script's development identity
                os.environ["AWS_ACCESS_KEY_ID"] = "shardline"
                os.environ["AWS_SECRET_ACCESS_KEY"] = "shardline-secret"
            s3 = open_storage(f"s3://bench-{uuid.uuid4().hex[:10]}/stream")
            assert isinstance(s3, ObstoreStorage)
            s3.write_bytes("warm-up", b"x")  # creates the bucket (SeaweedFS auto-create)
            for n in range(rounds):
                print(f"s3, round {n + 1}", flush=True)
                table.measure(RAW_PUT, lambda: put_obstore_raw(s3, "raw.bin", plain))
                table.measure(S3_WRITE, lambda: write_storage(s3, "obj.bin", size_mb))
                table.measure(RAW_GET, lambda: read_obstore_raw(s3, "raw.bin"))
                table.measure(S3_READ, lambda: read_storage(s3, "obj.bin"))
                s3.delete_prefix("")
        plain.unlink()

    print()
    print(table.markdown())
    print()
    print(f"local write / plain write:   {table.rate(LOCAL_WRITE) / table.rate(PLAIN_WRITE):.2f}")
    print(f"local read  / plain read:    {table.rate(LOCAL_READ) / table.rate(PLAIN_READ):.2f}")
    print(f"s3 write / raw obstore put:  {table.rate(S3_WRITE) / table.rate(RAW_PUT):.2f}")
    print(f"s3 read  / raw obstore get:  {table.rate(S3_READ) / table.rate(RAW_GET):.2f}")


@contextmanager
def _given(endpoint: str) -> Iterator[str]:
    yield endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2, help="best of N, phases alternating")
    parser.add_argument("--s3-endpoint", default=None)
    args = parser.parse_args()
    run(args.size_mb, args.rounds, args.s3_endpoint)


if __name__ == "__main__":
    main()
