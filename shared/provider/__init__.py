"""Providers' batch APIs behind one interface (:class:`BatchProvider`), and the factory.

``shared.provider.gemini`` is the first (and so far only) implementation.
"""

from pydantic import SecretStr

from shared.provider.base import (
    BatchProvider,
    JobCounts,
    ProviderFile,
    ProviderJob,
    ReaderFactory,
    UploadSession,
)
from shared.provider.gemini import GeminiProvider, build_client
from shared.settings import Settings


def build_provider(settings: Settings, api_key: SecretStr) -> BatchProvider:
    """The provider the settings name, talking with ``api_key``."""
    return GeminiProvider(build_client(settings, api_key))


__all__ = [
    "BatchProvider",
    "JobCounts",
    "ProviderFile",
    "ProviderJob",
    "ReaderFactory",
    "UploadSession",
    "build_provider",
]
