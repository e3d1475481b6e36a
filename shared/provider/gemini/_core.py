"""The part of the client every API shares: building requests, the one I/O call, retries."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from shared.errors import ProviderError, ProviderServerError
from shared.provider.gemini._errors import (
    API_KEY_HEADER,
    error_from_exception,
    error_from_response,
    malformed,
)
from shared.provider.retry import RetryPolicy, retry_wait

log = logging.getLogger("shardline.provider")

ModelT = TypeVar("ModelT", bound=BaseModel)
_RESOURCE_ID = re.compile(r"[A-Za-z0-9_-]+")


def resource_name(collection: str, name: str) -> str:
    """``"files/abc"`` from ``"abc"`` or ``"files/abc"``; rejects anything path-like."""
    ident = name.removeprefix(f"{collection}/")
    if not _RESOURCE_ID.fullmatch(ident):
        raise ValueError(f"not a {collection} name: {name!r}")
    return f"{collection}/{ident}"


def parse_wire(model: type[ModelT], data: Any, what: str) -> ModelT:
    """A wire model from an answer; a shape we cannot read is the provider's fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProviderServerError(
            f"unexpected {model.__name__} in answer to {what}: "
            f"{exc.error_count()} validation error(s)"
        ) from exc


class ClientCore:
    """Holds the seam (an ``httpx.Client``) and does all I/O in :meth:`_send`.

    The API key is a ``SecretStr`` and is put only into the ``x-goog-api-key`` header of each
    request; it is never in a URL, a log record, a repr or an error message, and it is
    blanked on any request an exception keeps.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        api_key: SecretStr,
        api_version: str = "v1beta",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self.api_version = api_version.strip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng

    def __repr__(self) -> str:
        base_url = str(self._http.base_url)
        return f"{type(self).__name__}(base_url={base_url!r}, api_version={self.api_version!r})"

    def close(self) -> None:
        """Close the ``httpx.Client`` this client was handed."""
        self._http.close()

    # ---- building ------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        content: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        authorized: bool = True,
    ) -> httpx.Request:
        all_headers = dict(headers or {})
        if authorized:
            all_headers[API_KEY_HEADER] = self._api_key.get_secret_value()
        return self._http.build_request(
            method, url, params=params, json=json, content=content, headers=all_headers
        )

    def _api_path(self, path: str) -> str:
        return f"/{self.api_version}/{path.lstrip('/')}"

    # ---- the one I/O call ----------------------------------------------------------

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send once; an error answer or a transport failure is raised as a ProviderError."""
        try:
            response = self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        if response.is_success:
            return response
        try:
            response.read()
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        finally:
            response.close()
        raise error_from_response(response, secret=self._api_key.get_secret_value())

    # ---- retrying ------------------------------------------------------------------

    def _wait_or_raise(
        self, error: ProviderError, request: httpx.Request, attempt: int, *, idempotent: bool
    ) -> None:
        wait = retry_wait(
            error, attempt=attempt, policy=self.retry, idempotent=idempotent, rng=self._rng
        )
        if wait is None:
            raise error
        log.warning(
            "%s %s failed (%s), retry %d/%d in %.2fs",
            request.method,
            request.url.path,  # never the query: an upload URL's id authorizes the session
            error,
            attempt,
            self.retry.max_attempts - 1,
            wait,
        )
        self._sleep(wait)

    def _call(
        self, build: Callable[[], httpx.Request], *, idempotent: bool = True, stream: bool = False
    ) -> httpx.Response:
        """Send with retries (see :func:`retry_wait`); a fresh request per attempt."""
        attempt = 1
        while True:
            request = build()
            try:
                return self._send(request, stream=stream)
            except ProviderError as error:
                self._wait_or_raise(error, request, attempt, idempotent=idempotent)
            attempt += 1

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """An API call answered with a JSON object."""
        response = self._call(
            lambda: self._request(method, self._api_path(path), params=params, json=body),
            idempotent=idempotent,
        )
        try:
            data = response.json() if response.content else {}
        except ValueError as exc:
            raise malformed(response, "not JSON") from exc
        if not isinstance(data, dict):
            raise malformed(response, "not a JSON object")
        return data

    def _paged(
        self, path: str, key: str, *, page_size: int, params: Mapping[str, str | int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Items under ``key`` on every page, following ``nextPageToken``."""
        query: dict[str, str | int] = {**(params or {}), "pageSize": page_size}
        while True:
            page = self._json("GET", path, params=query)
            items = page.get(key) or []
            yield from (item for item in items if isinstance(item, dict))
            token = page.get("nextPageToken")
            if not token:
                return
            query["pageToken"] = str(token)
