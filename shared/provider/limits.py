"""Each provider's documented limits on one batch job, as shard limits for a run.

A run's ``shard_max_bytes`` and ``shard_max_requests`` (settings or RunSpec options) are
lowered to what its provider accepts in one job; a larger value is not an error, it is
capped, and ``run.json`` records the limits the run actually used.

- Gemini: one input file of at most 2 GB (the settings' own cap), no request count limit.
- OpenAI-style: at most 50,000 requests and 200 MB in one input file. The file holds the
  *translated* lines (:func:`shared.provider.openai.lines.upload_line`), each longer than
  its staged line by a known amount, so the staged budget is 200 MB less that growth for
  the most lines a shard may hold.
"""

from __future__ import annotations

from shared.provider.openai.lines import ENDPOINTS
from shared.run.spec import Kind
from shared.settings import ProviderName

OPENAI_MAX_FILE_BYTES = 200 * 1_000_000
OPENAI_MAX_REQUESTS = 50_000
#: The translated line's fixed text less the staged line's (the url and model come on top).
_OPENAI_LINE_GROWTH = len(b'{"custom_id":"') - len(b'{"key":"') + len(
    b'","method":"POST","url":"","body":'
) - len(b'","request":')


def openai_line_growth(model: str, kind: Kind) -> int:
    """Bytes a translated line may add to its staged line (the model put into its body)."""
    return _OPENAI_LINE_GROWTH + len(ENDPOINTS[kind]) + len(f'"model":"{model}",')


def shard_limits(
    provider: ProviderName, *, model: str, kind: Kind, max_bytes: int, max_requests: int
) -> tuple[int, int]:
    """``(shard_max_bytes, shard_max_requests)`` within what ``provider`` accepts."""
    if provider == "openai":
        requests = min(max_requests, OPENAI_MAX_REQUESTS)
        budget = OPENAI_MAX_FILE_BYTES - requests * openai_line_growth(model, kind)
        return min(max_bytes, budget), requests
    return max_bytes, max_requests
