"""Gemini Developer API: the raw httpx wire client, its models, and its BatchProvider."""

from shared.provider.gemini.batches import CREATE_METHODS, model_name
from shared.provider.gemini.client import GeminiClient, build_client, build_http_client
from shared.provider.gemini.files import GRANULARITY, INPUT_MIME_TYPE
from shared.provider.gemini.models import (
    BatchJob,
    BatchStats,
    File,
    Status,
    UploadState,
    UploadStatus,
    parse_batch_state,
)
from shared.provider.gemini.provider import GeminiProvider, file_of, job_of

__all__ = [
    "CREATE_METHODS",
    "GRANULARITY",
    "INPUT_MIME_TYPE",
    "BatchJob",
    "BatchStats",
    "File",
    "GeminiClient",
    "GeminiProvider",
    "Status",
    "UploadState",
    "UploadStatus",
    "build_client",
    "build_http_client",
    "file_of",
    "job_of",
    "model_name",
    "parse_batch_state",
]
