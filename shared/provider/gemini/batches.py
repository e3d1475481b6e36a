"""Batch API: create (generate or embed, from a file or inline), get, list, cancel, delete.

Creating a job is not idempotent on the provider's side: the same create sent twice makes
two jobs and bills twice. So ``create_batch`` is retried in-process only when the failure
proves nothing was created (429, or a connection never established). After any other
failure the caller must look the job up by its display name
(:meth:`BatchesAPI.find_batches_by_display_name`) before creating again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.provider.gemini._core import ClientCore, parse_wire, resource_name
from shared.provider.gemini._errors import malformed
from shared.provider.gemini.models import BatchJob
from shared.run.spec import Kind

#: The create method per kind of work.
CREATE_METHODS: dict[str, str] = {
    "generate": "batchGenerateContent",
    "embed": "asyncBatchEmbedContent",
}
_MODEL = re.compile(r"(models|tunedModels)/[A-Za-z0-9._-]+")


def model_name(model: str) -> str:
    """``"models/gemini-2.5-flash"`` from either spelling (``tunedModels/…`` kept)."""
    name = model if "/" in model else f"models/{model}"
    if not _MODEL.fullmatch(name):
        raise ValueError(f"not a model name: {model!r}")
    return name


def _inline_item(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """Wire-shaped ``{"request": …, "metadata": …}``; a bare request is wrapped."""
    return item if "request" in item else {"request": item}


class BatchesAPI(ClientCore):
    """The Batch API calls of :class:`~shared.provider.gemini.client.GeminiClient`."""

    def create_batch(
        self,
        model: str,
        *,
        display_name: str,
        file_name: str | None = None,
        inline_requests: Sequence[Mapping[str, Any]] | None = None,
        kind: Kind = "generate",
    ) -> BatchJob:
        """Create a job over an uploaded file *or* inline requests (under 20 MB in all).

        ``display_name`` is required: it is how a create whose answer was lost is found
        again. Not retried after an ambiguous failure (see the module docstring).
        """
        if (file_name is None) == (inline_requests is None):
            raise ValueError("give exactly one of file_name and inline_requests")
        if kind not in CREATE_METHODS:
            raise ValueError(f"kind must be one of {sorted(CREATE_METHODS)}")
        if file_name is not None:
            input_config: dict[str, Any] = {"fileName": resource_name("files", file_name)}
        else:
            items = [_inline_item(item) for item in inline_requests or ()]
            input_config = {"requests": {"requests": items}}
        body = {"batch": {"displayName": display_name, "inputConfig": input_config}}
        path = f"{model_name(model)}:{CREATE_METHODS[kind]}"
        data = self._json("POST", path, body=body, idempotent=False)
        return parse_wire(BatchJob, data, f"POST {path}")

    def create_batch_streamed(
        self, model: str, *, kind: Kind, body: Callable[[], Iterable[bytes]], size: int
    ) -> BatchJob:
        """Create a job from a request body of ``size`` bytes streamed from ``body()`` (an
        inline batch too large to build in memory); not retried after an ambiguous failure."""
        if kind not in CREATE_METHODS:
            raise ValueError(f"kind must be one of {sorted(CREATE_METHODS)}")
        path = f"{model_name(model)}:{CREATE_METHODS[kind]}"
        headers = {"content-type": "application/json", "content-length": str(size)}
        response = self._call(
            lambda: self._request("POST", self._api_path(path), content=body(), headers=headers),
            idempotent=False,
        )
        try:
            data = response.json()
        except ValueError as exc:
            raise malformed(response, "not JSON") from exc
        return parse_wire(BatchJob, data, f"POST {path}")

    def get_batch(self, name: str) -> BatchJob:
        """The job's current state; ``NotFoundError`` if missing or another key's."""
        path = resource_name("batches", name)
        return parse_wire(BatchJob, self._json("GET", path), f"GET {path}")

    def list_batches(self, *, page_size: int = 100) -> Iterator[BatchJob]:
        """Every job of this key, following ``nextPageToken`` (items under ``operations``)."""
        for item in self._paged("batches", "operations", page_size=page_size):
            yield parse_wire(BatchJob, item, "GET batches")

    def find_batches_by_display_name(
        self, display_name: str, *, page_size: int = 100
    ) -> list[BatchJob]:
        """Jobs carrying ``display_name``: the look-up before any second create.

        The API has no server-side filter for this, so it lists every job of the key.
        """
        return [
            job
            for job in self.list_batches(page_size=page_size)
            if job.display_name == display_name
        ]

    def cancel_batch(self, name: str) -> None:
        """Ask the provider to stop the job; it ends CANCELLED (poll to see it)."""
        self._json("POST", f"{resource_name('batches', name)}:cancel")

    def delete_batch(self, name: str) -> None:
        """Remove the job from the list. ``NotFoundError`` when already gone (also when a
        retried delete had in fact succeeded): the caller decides whether that matters."""
        self._json("DELETE", resource_name("batches", name))
