"""Typed results: every response's text must be JSON that a schema accepts.

A run whose spec names an ``output_schema`` (:class:`shared.run.spec.OutputSchema`) gets a
:class:`ResponseValidator`, built once per part by the collect stage and called by
:func:`shared.jsonl.outcomes.classify_output` for each line's kept response, with the line's
staged request beside it. A response whose text (``candidates[0].content.parts[*].text``
joined, thought parts left out) does not parse or does not validate becomes an error::

    {"code": null, "status": "INVALID_OUTPUT", "message": "<why>", "text": "<the raw text>"}

``INVALID_OUTPUT`` is retryable (:data:`shared.jsonl.outcomes.RETRYABLE_STATUSES`): the line
is sent again while attempts remain, and ends in ``errors.jsonl`` with the last message and
text if it never validates. Its tokens stay in the run's totals: the provider bills them.

Decisions where the issue is silent:

- The text is parsed strictly (no stripping of Markdown code fences): a model asked for
  ``application/json`` answers bare JSON, and a fenced answer is the wrong shape.
- ``from_request`` validates each response against its own request's
  ``generationConfig.responseJsonSchema`` (JSON Schema), else its ``responseSchema`` (the
  provider's OpenAPI subset, converted by :func:`openapi_to_json_schema`). A request that has
  neither is not checked. A request schema that is not a valid schema makes its line an
  ``INVALID_SCHEMA`` error, which is not retried (sending it again cannot help).
- Compiled validators are kept per distinct schema (up to :data:`MAX_SCHEMAS` per part), so
  a file whose requests share a schema compiles it once; memory stays flat per line.
- Two implementations, one verdict: ``jsonschema-rs`` (compiled, ~1 µs a line) says whether
  a value is valid; the reference ``jsonschema`` package checks the schema itself and words
  the message of a refused value (its ``best_match``). Should they ever disagree on a value
  the fast one refused, the reference wins (the value passes). A ``$ref`` to a URL is never
  fetched: a schema that needs one is refused at submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator

from shared.errors import SpecError
from shared.run.spec import OutputSchema
from shared.storage import split_uri

INVALID_OUTPUT = "INVALID_OUTPUT"
INVALID_SCHEMA = "INVALID_SCHEMA"
#: Distinct request schemas compiled per part before the cache starts over.
MAX_SCHEMAS = 64
#: The longest validation message kept (the raw text is always kept whole).
MAX_MESSAGE = 1000

_CONFIG_FIELDS = ("generationConfig", "generation_config")
_JSON_SCHEMA_FIELDS = ("responseJsonSchema", "response_json_schema")
_OPENAPI_FIELDS = ("responseSchema", "response_schema")
_SCHEMA_MARKERS = (b"esponseJsonSchema", b"esponse_json_schema", b"esponseSchema",
                   b"esponse_schema")
#: OpenAPI integer fields the provider's Schema type may carry as strings (int64).
_INT_FIELDS = {
    "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties",
}
_CAMEL = {
    "min_items": "minItems", "max_items": "maxItems", "min_length": "minLength",
    "max_length": "maxLength", "min_properties": "minProperties",
    "max_properties": "maxProperties", "any_of": "anyOf", "property_ordering":
    "propertyOrdering",
}
#: OpenAPI annotations with no JSON Schema meaning for validation.
_DROPPED = {"nullable", "propertyOrdering", "example"}


class CompiledSchema:
    """One schema, compiled by both implementations (see the module docstring)."""

    def __init__(self, schema: dict[str, Any], where: str) -> None:
        cls = validators.validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise SpecError(f"{where}: not a valid JSON Schema: {exc.message}") from None
        try:
            self._fast = jsonschema_rs.validator_for(schema, offline=True)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            reason = str(exc).splitlines()[0]
            raise SpecError(f"{where}: the JSON Schema cannot be used: {reason}") from None
        self._reference: Validator = cls(schema)

    def refusal(self, value: Any) -> str | None:
        """Why ``value`` does not match (``at <path>: <message>``), None if it does."""
        if self._fast.is_valid(value):
            return None
        error = best_match(self._reference.iter_errors(value))
        if error is None:
            return None
        return f"at {error.json_path}: {error.message}"


def compile_schema(schema: Any, where: str) -> CompiledSchema:
    """``schema`` compiled (its ``$schema`` picks the draft; 2020-12 by default). A schema
    that is not one is a :class:`SpecError` naming ``where`` it came from."""
    if not isinstance(schema, dict):
        raise SpecError(f"{where}: a JSON Schema is an object, not {type(schema).__name__}")
    return CompiledSchema(schema, where)


def load_schema(output: OutputSchema) -> dict[str, Any] | None:
    """The run's one schema (inline or read from ``uri``); None for ``from_request``."""
    if output.json_schema is not None:
        return output.json_schema
    if output.uri is None:
        return None
    store, key = split_uri(output.uri)
    try:
        loaded = orjson.loads(store.read_bytes(key))
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"output_schema.uri {output.uri}: not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise SpecError(f"output_schema.uri {output.uri}: a JSON Schema is an object")
    return loaded


def check_output_schema(output: OutputSchema | None) -> None:
    """Fail at submission, not after paying for the run, if the run's schema is unusable."""
    if output is not None:
        schema = load_schema(output)
        if schema is not None:
            compile_schema(schema, _source(output))


def response_text(response: Mapping[str, Any]) -> str | None:
    """``candidates[0].content.parts[*].text`` joined (thought parts left out); None when
    the response carries no text at all (e.g. a blocked prompt)."""
    candidates = response.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        return None
    content = candidates[0].get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return None
    texts = [
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    ]
    return "".join(texts) if texts else None


def openapi_to_json_schema(schema: Any) -> Any:
    """The provider's ``responseSchema`` (an OpenAPI 3.0 subset: upper-case type names,
    ``nullable``, int64 counts as strings) as the JSON Schema it means."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for raw_name, value in schema.items():
        name = _CAMEL.get(str(raw_name), str(raw_name))
        if name in _DROPPED:
            continue
        if name == "type":
            kind = str(value).lower()
            if kind != "type_unspecified":
                out["type"] = kind
        elif name == "properties" and isinstance(value, dict):
            out[name] = {key: openapi_to_json_schema(sub) for key, sub in value.items()}
        elif name == "items":
            out[name] = openapi_to_json_schema(value)
        elif name == "anyOf" and isinstance(value, list):
            out[name] = [openapi_to_json_schema(sub) for sub in value]
        elif name in _INT_FIELDS and isinstance(value, str) and value.isdigit():
            out[name] = int(value)
        else:
            out[name] = value
    if schema.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


class ResponseValidator:
    """``validator(staged_line, response_json) -> error | None``: the hook the collect stage
    passes to :func:`shared.jsonl.outcomes.classify_output` when the run has a schema.

    ``schema`` is the run's one schema; None means each request's own (``from_request``).
    """

    def __init__(self, schema: dict[str, Any] | None, where: str = "output_schema") -> None:
        self._fixed = compile_schema(schema, where) if schema is not None else None
        self._compiled: dict[bytes, CompiledSchema | str] = {}
        self._last: tuple[Any, CompiledSchema | str] | None = None

    def __call__(self, staged: bytes, response_json: bytes) -> dict[str, Any] | None:
        validator = self._fixed
        if validator is None:
            found = self._request_validator(staged)
            if found is None:
                return None
            if isinstance(found, str):
                return {"code": None, "message": found, "status": INVALID_SCHEMA}
            validator = found
        response = orjson.loads(response_json)
        text = response_text(response) if isinstance(response, dict) else None
        if text is None:
            return _invalid("the response has no candidate text to parse", None)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return _invalid(f"the response text is not JSON: {exc}", text)
        refusal = validator.refusal(value)
        if refusal is None:
            return None
        return _invalid(f"the response text does not match the output schema {refusal}", text)

    def _request_validator(self, staged: bytes) -> CompiledSchema | str | None:
        """The compiled schema of the staged request's own generationConfig, None if it has
        none, or the reason its schema is unusable. Lines that cannot hold a schema are
        skipped without a parse."""
        if not any(marker in staged for marker in _SCHEMA_MARKERS):
            return None
        request = orjson.loads(staged).get("request")
        config = _first(request, _CONFIG_FIELDS)
        schema = _first(config, _JSON_SCHEMA_FIELDS)
        if schema is None:
            schema = _first(config, _OPENAPI_FIELDS)
            if schema is None:
                return None
            schema = openapi_to_json_schema(schema)
        last = self._last
        if last is not None and last[0] == schema:  # the usual file: one schema throughout
            return last[1]
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        found = self._compiled.get(key)
        if found is None:
            if len(self._compiled) >= MAX_SCHEMAS:
                self._compiled.clear()
            try:
                found = compile_schema(schema, "the request's response schema")
            except SpecError as exc:
                found = str(exc)
            self._compiled[key] = found
        self._last = (schema, found)
        return found


def response_validator(output: OutputSchema | None) -> ResponseValidator | None:
    """The run's validator (None without an ``output_schema``: nothing is checked)."""
    if output is None:
        return None
    return ResponseValidator(load_schema(output), _source(output))


def _source(output: OutputSchema) -> str:
    return f"output_schema.uri {output.uri}" if output.uri else "output_schema.json_schema"


def _first(container: Any, names: tuple[str, ...]) -> Any:
    if not isinstance(container, dict):
        return None
    for name in names:
        value = container.get(name)
        if value is not None:
            return value
    return None


def _invalid(message: str, text: str | None) -> dict[str, Any]:
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return {"code": None, "message": message, "status": INVALID_OUTPUT, "text": text}
