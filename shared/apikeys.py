"""API keys by fingerprint: records, logs and Redis name a key only by its fingerprint."""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from shared.errors import AuthError


def fingerprint(key: SecretStr) -> str:
    """A short, stable, non-reversible name for a key (``fp-`` + 12 hex chars of SHA-256)."""
    digest = hashlib.sha256(key.get_secret_value().encode()).hexdigest()
    return f"fp-{digest[:12]}"


class ApiKeyPool:
    """The configured keys, found by fingerprint; jobs stay with the key that made them."""

    def __init__(self, keys: list[SecretStr]) -> None:
        self._by_fingerprint = {fingerprint(key): key for key in keys}
        self._order = list(self._by_fingerprint)

    def __bool__(self) -> bool:
        return bool(self._order)

    @property
    def fingerprints(self) -> list[str]:
        return list(self._order)

    def get(self, key_fingerprint: str) -> SecretStr:
        try:
            return self._by_fingerprint[key_fingerprint]
        except KeyError:
            raise AuthError(
                f"no configured API key has fingerprint {key_fingerprint}; the job or file was "
                "made with a key this worker does not hold (configure it in SHARDLINE_API_KEYS)"
            ) from None

    def primary(self) -> tuple[str, SecretStr]:
        if not self._order:
            raise AuthError(
                "no API key configured: set SHARDLINE_API_KEY or GEMINI_API_KEY "
                "(or a SHARDLINE_API_KEY file in SHARDLINE_SECRETS_DIR)"
            )
        fp = self._order[0]
        return fp, self._by_fingerprint[fp]
