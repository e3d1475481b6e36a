"""An OpenAI-style Batch API (OpenAI, Azure OpenAI, services with the same endpoints): the
raw httpx wire client, the line translation, and its BatchProvider."""

from shared.provider.openai.client import OpenAIClient, build_openai_client
from shared.provider.openai.lines import ENDPOINTS, translate_output_line, upload_line
from shared.provider.openai.provider import OpenAIProvider, parse_status

__all__ = [
    "ENDPOINTS",
    "OpenAIClient",
    "OpenAIProvider",
    "build_openai_client",
    "parse_status",
    "translate_output_line",
    "upload_line",
]
