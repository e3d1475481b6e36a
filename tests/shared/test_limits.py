"""Limits of labels and model names: what passes, and messages that never quote a value."""

from __future__ import annotations

import pytest

from shared.limits import check_labels, check_model
from shared.settings import Settings


@pytest.mark.parametrize("labels", [
    {}, {"team": "search", "cost.centre": "42", "a_b-c": ""}, {"k": "é ünïcode ok"},
    {f"k{i}": "v" * 256 for i in range(32)},
])
def test_labels_within_the_limits_pass(labels: dict[str, str]) -> None:
    assert check_labels(labels) == labels


@pytest.mark.parametrize(("labels", "says"), [
    ({f"k{i}": "v" for i in range(33)}, "at most 32 labels"),
    ({"": "v"}, "label #1: a name is 1-63"),
    ({"x" * 64: "v"}, "label #1: a name is 1-63"),
    ({"ok": "v", "bad name": "v"}, "label #2: a name is 1-63"),
    ({"big": "v" * 257}, "label big: at most 256 characters"),
    ({"nl": "a\nb"}, "label nl: control characters"),
    ({"esc": "\x1b[31mred"}, "label esc: control characters"),
    ({"nul": "a\x00"}, "label nul: control characters"),
])
def test_labels_beyond_the_limits_are_refused(labels: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        check_labels(labels)
    for value in labels.values():
        if len(value) > 3:
            assert value not in str(caught.value)


@pytest.mark.parametrize("model", [
    "gemini-2.5-flash", "models/gemini-2.5-flash", "gemini-embedding-001",
    "tunedModels/my-model-abc123", "gemini-2.5-flash-preview-05-20",
])
def test_model_names_of_the_provider_pass(model: str) -> None:
    assert check_model(model) == model


@pytest.mark.parametrize("model", [
    "", "models/", "gemini 2.5", "gemini/../files", "x?alt=media", "gemini:batch",
    "-flag", "m" * 129, "gemini\n",
])
def test_other_model_names_are_refused(model: str) -> None:
    with pytest.raises(ValueError, match="not a model name"):
        check_model(model)


def test_the_default_models_are_checked_too() -> None:
    with pytest.raises(ValueError, match="generate_model"):
        Settings(generate_model="bad model")


def test_a_run_spec_checks_its_labels_and_model_without_quoting_them() -> None:
    from pydantic import ValidationError

    from shared.run.spec import RunSpec
    from shared.validation import problems

    big = "v" * 5_000_000
    with pytest.raises(ValidationError) as caught:
        RunSpec(input_uri="in", output_uri="out", model="gemini/../files?x",
                labels={"team": big, "esc": "\x1b[2J"})
    message = problems(caught.value)
    assert message.startswith("model: not a model name")
    assert "labels: label team: at most 256 characters" in message
    assert big[:300] not in message and "gemini/../files" not in message
    assert RunSpec(input_uri="in", output_uri="out", model="models/gemini-2.5-pro").model == (
        "gemini-2.5-pro")
