"""obstore stores for ``s3://``, ``gs://`` and ``memory://``, configured the standard way.

Credentials never pass through Shardline: obstore reads them from the environment (or the
instance, container or workload identity) when the store is built, and they appear in no
URI, repr or log line.

S3 (obstore reads these itself): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` (S3-compatible servers), ``AWS_ALLOW_HTTP``, web identity
(``AWS_WEB_IDENTITY_TOKEN_FILE``, ``AWS_ROLE_ARN``) and instance metadata. Two additions:
an ``http://`` endpoint turns on plain HTTP by itself (whoever wrote ``http://`` chose it),
and with a custom endpoint listings are walked one "directory" at a time and sorted here,
because S3-compatible servers need not list in key order (SeaweedFS lists ``a/b`` before
``a.txt``); against AWS itself one flat, already sorted listing is used.

GCS: ``GOOGLE_SERVICE_ACCOUNT`` (path), ``GOOGLE_SERVICE_ACCOUNT_KEY`` (JSON),
``GOOGLE_APPLICATION_CREDENTIALS``, else the metadata server. An emulator is reached with
``STORAGE_EMULATOR_HOST`` (the variable Google's own client libraries honour) or obstore's
``GOOGLE_BASE_URL``; with an emulator and no credentials configured, a dummy bearer token
is sent.

``memory://name`` stores are process-global and named: every ``open_storage`` of the same
name sees the same objects, which lets tests hand a URI to code that opens it itself.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from obstore.store import GCSStore, MemoryStore, ObjectStore, S3Store

if TYPE_CHECKING:
    from obstore.store import GCSConfig, GCSCredential, GCSCredentialProvider, S3Config

_GOOGLE_CREDENTIAL_VARS = (
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_BEARER_TOKEN",
)
_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


@dataclass(frozen=True)
class Backend:
    """An obstore store for one bucket, and what it promises."""

    store: ObjectStore
    #: ``s3://bucket``, ``gs://bucket`` or ``memory://name``: the store's root as a URI.
    uri: str
    #: Whether a flat listing comes back in key order (else it is walked and sorted here).
    sorted_listing: bool


def s3_backend(
    bucket: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    allow_http: bool | None = None,
) -> Backend:
    """An S3 (or S3-compatible) bucket; ``endpoint``/``region`` override the environment."""
    effective = endpoint or _env_first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
    if allow_http is None:
        allow_http = _env_true("AWS_ALLOW_HTTP") or _is_http(effective)
    config: S3Config = {}
    if endpoint:
        config["aws_endpoint_url_s3"] = endpoint  # wins over every endpoint variable
    if region:
        config["region"] = region
    store = S3Store(bucket, config=config, client_options={"allow_http": allow_http})
    return Backend(store=store, uri=f"s3://{bucket}", sorted_listing=effective is None)


def gcs_backend(
    bucket: str, *, base_url: str | None = None, allow_http: bool | None = None
) -> Backend:
    """A GCS bucket; ``base_url`` (or ``STORAGE_EMULATOR_HOST``) points at an emulator."""
    emulator = base_url or os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator and "://" not in emulator:
        emulator = f"http://{emulator}"
    effective = emulator or os.environ.get("GOOGLE_BASE_URL")
    if allow_http is None:
        allow_http = _is_http(effective)
    config: GCSConfig = {}
    provider: GCSCredentialProvider | None = None
    if emulator:
        config["base_url"] = emulator
        if not any(os.environ.get(name) for name in _GOOGLE_CREDENTIAL_VARS):
            # Emulators accept any token; without one obstore would ask the instance
            # metadata server (169.254.169.254), which a laptop or CI box does not have.
            provider = _emulator_token
    store = GCSStore(
        bucket,
        config=config,
        client_options={"allow_http": allow_http},
        credential_provider=provider,
    )
    return Backend(store=store, uri=f"gs://{bucket}", sorted_listing=True)


def memory_backend(name: str) -> Backend:
    """The process-wide in-memory store called ``name`` (created on first use)."""
    with _memory_lock:
        store = _memory_stores.get(name)
        if store is None:
            store = _memory_stores[name] = MemoryStore()
    return Backend(store=store, uri=f"memory://{name}", sorted_listing=True)


def _emulator_token() -> GCSCredential:
    return {"token": "emulator", "expires_at": None}


def _env_first(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _is_http(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith("http://")
