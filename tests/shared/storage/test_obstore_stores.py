"""Store construction from the environment (shared/storage/_obstore_stores.py).

Only construction is checked here (no request is sent); the stores' behaviour is the
contract in test_base.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from obstore.store import GCSStore, S3Store

from shared.storage._obstore_stores import Backend, gcs_backend, memory_backend, s3_backend

AWS_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ALLOW_HTTP")
GOOGLE_VARS = (
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_BASE_URL",
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_BEARER_TOKEN",
)


@pytest.fixture(autouse=True)
def _no_cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWS_ENDPOINT_VARS + GOOGLE_VARS:
        monkeypatch.delenv(name, raising=False)


def _s3(backend: Backend) -> S3Store:
    assert isinstance(backend.store, S3Store)
    return backend.store


def _gcs(backend: Backend) -> GCSStore:
    assert isinstance(backend.store, GCSStore)
    return backend.store


def test_memory_stores_are_shared_by_name() -> None:
    first, again, other = memory_backend("m1"), memory_backend("m1"), memory_backend("m2")
    assert first.store is again.store
    assert first.store is not other.store
    assert first.uri == "memory://m1"


def test_s3_against_aws_lists_flat() -> None:
    backend = s3_backend("bucket")
    assert backend.uri == "s3://bucket"
    assert backend.sorted_listing
    assert _s3(backend).client_options == {"allow_http": "false"}


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_s3_compatible_endpoint_from_env(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    backend = s3_backend("bucket")
    assert not backend.sorted_listing  # walked and sorted here
    assert _s3(backend).client_options == {"allow_http": "true"}


def test_s3_explicit_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://elsewhere.example")
    backend = s3_backend("bucket", endpoint="http://127.0.0.1:9", region="eu-west-1")
    config: dict[str, object] = dict(_s3(backend).config)  # keys come back normalized
    assert config["endpoint_url_s3"] == "http://127.0.0.1:9"
    assert _s3(backend).config["region"] == "eu-west-1"
    assert _s3(backend).client_options == {"allow_http": "true"}


def test_https_endpoint_keeps_tls_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example")
    assert _s3(s3_backend("b")).client_options == {"allow_http": "false"}
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    assert _s3(s3_backend("b")).client_options == {"allow_http": "true"}


def test_gcs_emulator_gets_a_dummy_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the instance metadata server: that address is not on loopback."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    backend = gcs_backend("bucket")
    assert backend.uri == "gs://bucket"
    assert _gcs(backend).config["base_url"] == "http://127.0.0.1:4443"
    assert _gcs(backend).client_options == {"allow_http": "true"}
    provider = _gcs(backend).credential_provider
    assert provider is not None
    assert provider() == {"token": "emulator", "expires_at": None}


def test_gcs_emulator_with_real_credentials_uses_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "adc.json"
    credentials.write_text(
        '{"type": "authorized_user", "client_id": "i", "client_secret": "s", "refresh_token": "r"}'
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
    backend = gcs_backend("bucket", base_url="http://127.0.0.1:4443")
    assert _gcs(backend).credential_provider is None


def test_gcs_default_is_google() -> None:
    backend = gcs_backend("bucket")
    assert "base_url" not in _gcs(backend).config
    assert _gcs(backend).credential_provider is None
    assert _gcs(backend).client_options == {"allow_http": "false"}
