"""Anthropic Message Batches: the raw httpx client, the body and result translation, and its
BatchProvider (requests travel inline in the create call; there are no files)."""

from shared.provider.anthropic.client import AnthropicClient, build_anthropic_client
from shared.provider.anthropic.lines import batch_item, translate_result_line
from shared.provider.anthropic.provider import AnthropicProvider, job_of

__all__ = [
    "AnthropicClient",
    "AnthropicProvider",
    "batch_item",
    "build_anthropic_client",
    "job_of",
    "translate_result_line",
]
