"""Fault rules and their deterministic decisions (emulator/faults.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emulator.faults import FaultConfig, FaultEngine


def engine(**config) -> FaultEngine:
    return FaultEngine(FaultConfig.model_validate(config))


def test_endpoint_glob_method_skip_and_times():
    faults = engine(http=[{"endpoint": "batches.create*", "method": "POST", "skip": 1, "times": 2}])
    hits = [faults.http_fault("batches.create_embeddings", "POST") is not None for _ in range(5)]
    assert hits == [False, True, True, False, False]
    assert faults.http_fault("batches.get", "GET") is None
    assert faults.http_fault("batches.create", "GET") is None


def test_rate_is_seeded():
    def run(seed: int) -> list[bool]:
        faults = engine(seed=seed, http=[{"rate": 0.5}])
        return [faults.http_fault("files.get", "GET") is not None for _ in range(64)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_replace_restarts_counters():
    faults = engine(http=[{"times": 1}])
    assert faults.http_fault("files.get", "GET") is not None
    assert faults.http_fault("files.get", "GET") is None
    faults.replace(faults.config)
    assert faults.http_fault("files.get", "GET") is not None


def test_job_effects_merge_and_select():
    faults = engine(
        jobs=[
            {"display_name_contains": "s00002", "fail": {"code": 13, "message": "x"}},
            {"kind": "embed", "expire": True},
            {"request_errors": {"rate": 0.2}, "late_output_seconds": 30},
        ]
    )
    failed = faults.job_effects("run-s00002", "models/m", "generate")
    assert failed.fail is not None and failed.fail.code == 13
    assert failed.request_errors is not None and failed.late_output_seconds == 30
    embed = faults.job_effects("run-s00001", "models/e", "embed")
    assert embed.expire and embed.fail is None
    plain = faults.job_effects("run-s00001", "models/m", "generate")
    assert plain.fail is None and not plain.expire


def test_latency_adds_up():
    faults = engine(latency=[{"seconds": 1.5}, {"endpoint": "files.*", "seconds": 0.5}])
    assert faults.latency("files.get", "GET") == 2.0
    assert faults.latency("batches.get", "GET") == 1.5


def test_invalid_settings_are_refused():
    with pytest.raises(ValidationError):
        FaultConfig.model_validate({"http": [{"code": 200}]})
    with pytest.raises(ValidationError):
        FaultConfig.model_validate({"unknown": 1})
