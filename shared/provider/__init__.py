"""The Gemini File + Batch API client (raw httpx) and its wire models."""

from shared.provider.batches import CREATE_METHODS, BatchKind, model_name
from shared.provider.client import GeminiClient, build_client, build_http_client
from shared.provider.files import GRANULARITY, INPUT_MIME_TYPE, ReaderFactory
from shared.provider.models import (
    BatchJob,
    BatchState,
    BatchStats,
    File,
    Status,
    UploadSession,
    UploadState,
    UploadStatus,
)
from shared.provider.retry import RetryPolicy, retry_wait

__all__ = [
    "CREATE_METHODS",
    "GRANULARITY",
    "INPUT_MIME_TYPE",
    "BatchJob",
    "BatchKind",
    "BatchState",
    "BatchStats",
    "File",
    "GeminiClient",
    "ReaderFactory",
    "RetryPolicy",
    "Status",
    "UploadSession",
    "UploadState",
    "UploadStatus",
    "build_client",
    "build_http_client",
    "model_name",
    "retry_wait",
]
