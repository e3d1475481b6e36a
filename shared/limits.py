"""Size and character limits of what a caller names: labels and model names.

Labels are copied into ``run.json`` (which every task reads) and the summary, so their size
is the records' size; a model name goes into the provider URL (``models/{model}:...``), so a
``/``, ``?`` or ``:`` in it would change the request. Both are checked when a RunSpec is
built (the CLI, ``shardline.start_run``, beat), before anything is claimed or uploaded. The
messages name the label, never its value.
"""

from __future__ import annotations

import re

MAX_LABELS = 32
MAX_LABEL_VALUE_CHARS = 256
LABEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
#: The provider's model ids (``gemini-2.5-flash``, ``gemini-embedding-001``), with or without
#: ``models/``, or a tuned model (``tunedModels/...``); the shape its client accepts.
MODEL_NAME = re.compile(r"(?:(?:models|tunedModels)/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` if within the limits; ``ValueError`` naming the first label that is not."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels, not {len(labels)}")
    for number, (name, value) in enumerate(labels.items(), start=1):
        if not LABEL_NAME.fullmatch(name):
            raise ValueError(
                f"label #{number}: a name is 1-63 letters, digits and '_.-'"
            )
        if len(value) > MAX_LABEL_VALUE_CHARS:
            raise ValueError(f"label {name}: at most {MAX_LABEL_VALUE_CHARS} characters")
        if not value.isprintable():
            raise ValueError(f"label {name}: control characters are not allowed")
    return labels


def check_model(model: str) -> str:
    """``model`` if it has the shape of a model name; ``ValueError`` otherwise."""
    if not MODEL_NAME.fullmatch(model):
        raise ValueError(
            "not a model name: letters, digits and '._-' (at most 128), optionally after "
            "'models/' or 'tunedModels/', e.g. gemini-2.5-flash"
        )
    return model


__all__ = [
    "LABEL_NAME",
    "MAX_LABELS",
    "MAX_LABEL_VALUE_CHARS",
    "MODEL_NAME",
    "check_labels",
    "check_model",
]
