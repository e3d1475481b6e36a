"""What a cached response is filed under: a hash of everything that changes the answer.

A key is ``<32 hex digits>.<n>``:

- the digits are a BLAKE2b-128 of the *namespace* and the request's canonical bytes. The
  namespace holds the cache format version, the provider (``gemini``), the API endpoint it
  is reached at (the emulator's answers never serve the real API and back), the model
  (without ``models/``) and the kind (generate or embed). The request's bytes are the ones
  Shardline submits (``orjson`` of the parsed request: no insignificant whitespace, key
  order as written), so everything inside the request — contents, system instruction,
  ``generationConfig`` (temperature, seed, schema ...), tools, safety settings, cached
  content names — is part of the key and one changed byte is another key.
- ``n`` counts earlier lines of the same run with the same request: the first is ``.0``,
  a second copy under another user key is ``.1``, and so on. Identical requests in one run
  are on purpose (sampling), so each goes to the provider and is cached apart; running the
  same input again finds every copy.

Not in the key, and so the reason to turn the cache off (``--no-cache``): what the
provider changes behind a name (a model alias that moves to a new version, the content of a
``fileData`` URI or of a ``cachedContents`` entry), and the user key and metadata of a line
(they come back from our own copy of the input, never from the cache).
"""

from __future__ import annotations

import hashlib

FORMAT = b"shardline-cache/1"
PROVIDER = "gemini"
DIGEST_BYTES = 16
#: Keys are filed in buckets by their first hex digit: 16 buckets. Each collected part
#: writes at most one segment per bucket (so a small part makes few objects), and a plan's
#: lookup holds one bucket's share of the input's keys per thread (1/16 of them).
BUCKET_DIGITS = 1


def namespace(*, endpoint: str, model: str, kind: str, provider: str = PROVIDER) -> bytes:
    """The part of every key a run shares: format, provider, endpoint, model, kind."""
    fields = (FORMAT, provider.encode(), endpoint.rstrip("/").encode(),
              model.removeprefix("models/").encode(), kind.encode())
    return hashlib.blake2b(b"\n".join(fields), digest_size=DIGEST_BYTES).digest()


def request_digest(space: bytes, request_json: bytes) -> bytes:
    """The hex digest of one request's bytes in ``space`` (no occurrence number yet)."""
    return hashlib.blake2b(request_json, digest_size=DIGEST_BYTES, key=space).hexdigest().encode()


def cache_key(digest: bytes, occurrence: int) -> bytes:
    return b"%s.%d" % (digest, occurrence)


def bucket_of(key: bytes) -> str:
    return key[:BUCKET_DIGITS].decode()


def request_bytes(staged: bytes) -> bytes:
    """The request's bytes inside a staged line ``{"key":"N","request":{...}}\\n``."""
    start = staged.index(b'"request":', 8) + 10
    return staged[start:-2]
