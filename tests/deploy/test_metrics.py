"""deploy/metrics: the alert rules and the Grafana dashboard parse, have the structure
Prometheus and Grafana expect, and name only metrics Shardline's endpoint serves.
(promtool is not available: the rule file's YAML structure and metric names are checked.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

import shared.events  # noqa: F401 - registers the event counters
from shared.metrics.runs import RunsCollector
from shared.settings import Settings
from tests.deploy._deploy import DEPLOY, REPO, yaml_doc

METRICS = DEPLOY / "metrics"
NAME = re.compile(r"\b(shardline_[a-z0-9_]*[a-z0-9])\b")
DURATION = re.compile(r"^\d+[smhdwy]$")
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> set[str]:
    """Every series name the endpoint can serve (a family with no sample yet included)."""
    state = tmp_path_factory.mktemp("state")
    settings = Settings(state_uri=str(state), api_key=SecretStr("k"), metrics_cache_seconds=0)
    registry = CollectorRegistry()
    registry.register(RunsCollector(settings))
    text = generate_latest(registry).decode() + generate_latest(REGISTRY).decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        names.update(sample.name for sample in family.samples)
    return {name for name in names if name.startswith("shardline_")}


def unknown_names(text: str, served: set[str]) -> set[str]:
    return set(NAME.findall(text)) - served


def balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_alert_rules_structure_and_names(served) -> None:
    rules_file = yaml_doc(METRICS / "alerts.yml")
    assert set(rules_file) == {"groups"}
    alerts = []
    for group in rules_file["groups"]:
        assert set(group) <= {"name", "rules", "interval"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, f"unknown keys in {rule.get('alert')}"
            assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z_]\w*", rule["alert"])
            assert isinstance(rule["expr"], str) and balanced(rule["expr"]), rule["alert"]
            assert DURATION.match(rule.get("for", "0s")), rule["alert"]
            for field in ("labels", "annotations"):
                assert all(
                    isinstance(k, str) and isinstance(v, str) for k, v in rule[field].items()
                )
            assert rule["annotations"].get("summary")
            texts = [rule["expr"], *rule["annotations"].values()]
            missing = set().union(*(unknown_names(t, served) for t in texts))
            assert not missing, f"{rule['alert']}: no such metric {sorted(missing)}"
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts))
    # What the issue asks to be alerted on.
    assert {"ShardlineRunStalled", "ShardlineJobsNearExpiry", "ShardlineFileQuotaNearFull",
            "ShardlineProviderErrorRateHigh"} <= set(alerts)


def test_the_dashboard(served) -> None:
    dashboard = json.loads((METRICS / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    used: set[str] = set()
    for panel in panels:
        assert panel["title"] and panel["type"] in {"timeseries", "stat", "gauge", "table"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert balanced(target["expr"]), panel["title"]
            missing = unknown_names(target["expr"], served)
            assert not missing, f"{panel['title']}: no such metric {sorted(missing)}"
            used.update(NAME.findall(target["expr"]))
    # Every metric the issue names has a panel.
    for needed in ("shardline_runs", "shardline_shards", "shardline_jobs",
                   "shardline_requests_total", "shardline_tokens_total",
                   "shardline_cost_usd_total", "shardline_provider_calls_total",
                   "shardline_provider_errors_total", "shardline_admission_waits_total",
                   "shardline_oldest_live_job_age_seconds",
                   "shardline_reconciler_findings_total"):
        assert needed in used, needed


def test_the_readme_names_only_served_metrics(served) -> None:
    readme = (REPO / "README.md").read_text()
    assert "shardline_runs" in readme
    assert not unknown_names(readme, served)


def test_the_name_check_catches_a_typo(served) -> None:
    assert "shardline_requests_total" in served and "shardline_runs" in served
    assert unknown_names("sum(rate(shardline_provider_call_total[5m]))", served) == {
        "shardline_provider_call_total"
    }
    assert not balanced("max(shardline_runs")


def test_the_scrape_config_loads_the_rules() -> None:
    config = yaml_doc(METRICS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    assert Path(METRICS / config["rule_files"][0]).exists()
