"""Providers' batch APIs behind one interface (:class:`BatchProvider`), and the factory.

Implementations: ``shared.provider.gemini`` (the Gemini Developer API),
``shared.provider.openai`` (OpenAI-style Batch APIs) and ``shared.provider.anthropic``
(Anthropic Message Batches).
"""

from pydantic import SecretStr

from shared.provider.anthropic import AnthropicProvider, build_anthropic_client
from shared.provider.base import (
    BatchProvider,
    JobCounts,
    ProviderFile,
    ProviderJob,
    ReaderFactory,
    UploadSession,
)
from shared.provider.gemini import GeminiProvider, build_client
from shared.provider.openai import OpenAIProvider, build_openai_client
from shared.run.spec import Kind
from shared.settings import ProviderName, Settings


def build_provider(
    settings: Settings,
    api_key: SecretStr,
    *,
    provider: ProviderName | None = None,
    model: str | None = None,
    kind: Kind | None = None,
    inline: bool | None = None,
) -> BatchProvider:
    """``provider`` (default: the settings' one) talking with ``api_key``; ``model`` and
    ``kind`` are the run's, for providers that write them into uploaded lines; ``inline`` the
    run's choice of Gemini's inline mode (None: by size)."""
    chosen = provider or settings.provider
    if chosen == "anthropic":
        return AnthropicProvider(build_anthropic_client(settings, api_key), model=model)
    if chosen == "openai":
        return OpenAIProvider(
            build_openai_client(settings, api_key),
            completion_window=settings.openai_completion_window,
            model=model,
            kind=kind,
        )
    return GeminiProvider(
        build_client(settings, api_key),
        inline_max_bytes=settings.gemini_inline_max_bytes,
        inline=inline,
    )


__all__ = [
    "BatchProvider",
    "JobCounts",
    "ProviderFile",
    "ProviderJob",
    "ReaderFactory",
    "UploadSession",
    "build_provider",
]
