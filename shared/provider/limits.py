"""Each provider's documented limits on one batch job, as shard limits for a run.

A run's ``shard_max_bytes`` and ``shard_max_requests`` (settings or RunSpec options) are
lowered to what its provider accepts in one job; a larger value is not an error, it is
capped, and ``run.json`` records the limits the run actually used.

- Gemini: one input file of at most 2 GB (the settings' own cap), no request count limit.
- Anthropic: at most 100,000 requests and 256 MB in one create body, whose items are
  measured the same way.
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
ANTHROPIC_MAX_BODY_BYTES = 256 * 1_000_000 - 64  # less the body's own brackets
ANTHROPIC_MAX_REQUESTS = 100_000
#: ``{"custom_id":"`` + ``","params":`` + a comma, less ``{"key":"`` + ``","request":`` + newline.
_ANTHROPIC_ITEM_GROWTH = len(b'{"custom_id":"') + len(b'","params":') + 1 - len(
    b'{"key":"'
) - len(b'","request":') - 1
OPENAI_MAX_REQUESTS = 50_000
#: The translated line's fixed text less the staged line's (the url and model come on top).
_OPENAI_LINE_GROWTH = len(b'{"custom_id":"') - len(b'{"key":"') + len(
    b'","method":"POST","url":"","body":'
) - len(b'","request":')


def anthropic_item_growth(model: str) -> int:
    """Bytes a create-body item (and its comma) may add to its staged line."""
    return _ANTHROPIC_ITEM_GROWTH + len(f'"model":"{model}",')


def openai_line_growth(model: str, kind: Kind) -> int:
    """Bytes a translated line may add to its staged line (the model put into its body)."""
    return _OPENAI_LINE_GROWTH + len(ENDPOINTS[kind]) + len(f'"model":"{model}",')


def shard_limits(
    provider: ProviderName, *, model: str, kind: Kind, max_bytes: int, max_requests: int
) -> tuple[int, int]:
    """``(shard_max_bytes, shard_max_requests)`` within what ``provider`` accepts."""
    if provider == "anthropic":
        requests = min(max_requests, ANTHROPIC_MAX_REQUESTS)
        budget = ANTHROPIC_MAX_BODY_BYTES - requests * anthropic_item_growth(model)
        return min(max_bytes, budget), requests
    if provider == "openai":
        requests = min(max_requests, OPENAI_MAX_REQUESTS)
        budget = OPENAI_MAX_FILE_BYTES - requests * openai_line_growth(model, kind)
        return min(max_bytes, budget), requests
    return max_bytes, max_requests
