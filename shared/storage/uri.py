"""Open a :class:`Storage` from a URI, and split or join URIs.

Accepted URIs:

- a path, absolute or relative, ``~`` expanded: a local directory (``uri`` is then the
  absolute path);
- ``file:///abs/path``: the same;
- ``s3://bucket[/prefix]``: S3 or an S3-compatible server (see ``_obstore_stores``);
- ``gs://bucket[/prefix]`` (or ``gcs://``): Google Cloud Storage;
- ``memory://name[/prefix]``: a process-wide in-memory store, for tests and demos.

A URI that cannot be used raises ``ValueError`` (so pydantic validators can report it on the
field that holds it); nothing here touches the network or the disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict, Unpack
from urllib.parse import unquote, urlsplit

from shared.storage._object_keys import check_key, check_prefix
from shared.storage._obstore_stores import gcs_backend, memory_backend, s3_backend
from shared.storage.base import Storage
from shared.storage.local import LocalStorage
from shared.storage.obstore_backend import ObstoreStorage

_SCHEMES = {"file", "s3", "gs", "gcs", "memory"}


class StorageOptions(TypedDict, total=False):
    """Overrides of what the environment says; each is optional."""

    #: S3 endpoint of an S3-compatible server (else ``AWS_ENDPOINT_URL[_S3]`` or AWS).
    s3_endpoint: str
    #: S3 region (else ``AWS_REGION``/``AWS_DEFAULT_REGION``).
    s3_region: str
    #: GCS base URL of an emulator (else ``STORAGE_EMULATOR_HOST`` or Google).
    gcs_base_url: str
    #: Allow plain HTTP (default: only when the endpoint itself says ``http://``).
    allow_http: bool
    #: Local only: ``fsync`` files and directories on commit (default True).
    fsync: bool


def open_storage(uri: str, **options: Unpack[StorageOptions]) -> Storage:
    """The storage rooted at ``uri``."""
    scheme, bucket, path = _parse(uri)
    if scheme == "file":
        return LocalStorage(path, fsync=options.get("fsync", True))
    prefix = check_prefix(path) if path.strip("/") else ""
    if scheme == "s3":
        backend = s3_backend(
            bucket,
            endpoint=options.get("s3_endpoint"),
            region=options.get("s3_region"),
            allow_http=options.get("allow_http"),
        )
    elif scheme == "gs":
        backend = gcs_backend(
            bucket, base_url=options.get("gcs_base_url"), allow_http=options.get("allow_http")
        )
    else:
        backend = memory_backend(bucket)
    return ObstoreStorage(backend, prefix)


def split_uri(uri: str, **options: Unpack[StorageOptions]) -> tuple[Storage, str]:
    """The storage rooted at the object's parent "directory", and the object's key.

    ``split_uri("s3://b/in/data.jsonl")`` is ``(open_storage("s3://b/in"), "data.jsonl")``.
    """
    scheme, bucket, path = _parse(uri)
    if uri.endswith("/"):
        raise ValueError(f"{uri!r} names a directory, not an object")
    if scheme == "file":
        local = Path(path)
        return LocalStorage(local.parent, fsync=options.get("fsync", True)), check_key(local.name)
    parent, _, key = path.strip("/").rpartition("/")
    if not key:
        raise ValueError(f"{uri!r} names a bucket, not an object")
    root = uri[: uri.rindex("/")]
    return open_storage(root if parent else f"{scheme}://{bucket}", **options), check_key(key)


def join_uri(uri: str, key: str) -> str:
    """The URI of ``key`` under ``uri`` (``join_uri("s3://b/out", "a/x")`` is ``s3://b/out/a/x``)."""
    check_key(key)
    return f"{uri}{key}" if uri.endswith("/") else f"{uri}/{key}"


def _parse(uri: str) -> tuple[str, str, str]:
    """``(scheme, bucket, path)``; for local storage, scheme ``file`` and an absolute path."""
    if not uri:
        raise ValueError("empty storage URI")
    if "://" not in uri:
        return "file", "", str(Path(uri).expanduser().absolute())
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"unsupported storage URI {uri!r}: use a path, file://, s3://, gs:// or memory://"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"storage URI {uri!r} must not have a query or fragment")
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ValueError(f"file URI {uri!r} must be local (file:///path)")
        return "file", "", str(Path(unquote(parts.path)).absolute())
    if not parts.netloc:
        raise ValueError(f"storage URI {uri!r} has no bucket or store name")
    if "@" in parts.netloc or ":" in parts.netloc:
        # Never let credentials or endpoints ride in a URI: it is logged and stored.
        raise ValueError(
            f"storage URI {parts.scheme}://{parts.netloc.rpartition('@')[2]}/... must name "
            "only a bucket; credentials and endpoints come from the environment"
        )
    return ("gs" if scheme == "gcs" else scheme), parts.netloc, parts.path
