"""deploy/k8s: every manifest, the kustomization, the invariants, and (when installed) the
Kubernetes OpenAPI schema and a kustomize render."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared import names
from shared.settings import Settings
from tests.deploy._deploy import K8S, WORKER_STOP_GRACE_SECONDS, yaml, yaml_doc, yaml_docs

KUBERNETES_VERSION = "1.30.0"  # the oldest release still widely run that has every field used


def manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in manifests() for doc in yaml_docs(path)]


def find(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod(name: str) -> dict[str, Any]:
    return find("Deployment", name)["spec"]["template"]["spec"]


def container(name: str) -> dict[str, Any]:
    (only,) = pod(name)["containers"]
    return only


def test_every_manifest_parses_and_names_itself():
    assert manifests()
    for path, doc in documents():
        assert isinstance(doc, dict), path
        for key in ("apiVersion", "kind"):
            assert doc.get(key), f"{path}: no {key}"
        assert doc.get("metadata", {}).get("name"), f"{path}: no metadata.name"
        assert "namespace" not in doc["metadata"], f"{path}: manifests are namespace-agnostic"


def test_kustomization_lists_every_manifest():
    kustomization = yaml_doc(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")
               if p.name != "kustomization.yaml" and not p.name.endswith(".example.yaml")}
    assert listed == present
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator["files"]:
            assert (K8S / entry.split("=")[-1]).is_file(), entry
    assert "namespace" not in kustomization


def test_components_are_complete():
    for directory in (K8S / "components").iterdir():
        kustomization = yaml_doc(directory / "kustomization.yaml")
        assert kustomization["kind"] == "Component"
        listed = set(kustomization["resources"])
        present = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert listed == present, directory


def test_beat_is_a_singleton_that_never_overlaps():
    beat = find("Deployment", "shardline-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    args = container("shardline-beat")["args"]
    assert args[:4] == ["celery", "-A", "workers", "beat"]


def test_beat_and_workers_read_the_same_schedule():
    for name in ("shardline-beat", "shardline-worker"):
        env = {e["name"]: e.get("value") for e in container(name).get("env", [])}
        mount = next(m for m in container(name)["volumeMounts"] if m["name"] == "schedule")
        assert str(Path(env["SHARDLINE_SCHEDULE_FILE"]).parent) == mount["mountPath"], name
        volume = next(v for v in pod(name)["volumes"] if v["name"] == "schedule")
        assert volume["configMap"]["name"] == "shardline-schedule", name


def test_worker_drains_on_sigterm_and_is_probed():
    spec = pod("shardline-worker")
    assert spec["terminationGracePeriodSeconds"] == WORKER_STOP_GRACE_SECONDS
    worker = container("shardline-worker")
    assert worker["args"][:4] == ["celery", "-A", "workers", "worker"]
    assert f"--queues={names.QUEUE}" in worker["args"]
    assert worker["resources"]["requests"]["cpu"] and worker["resources"]["limits"]["memory"]
    probe = " ".join(worker["livenessProbe"]["exec"]["command"])
    destination = re.search(r'--destination\s+"?([^"\s]+)', probe).group(1)
    node = next(a for a in worker["args"] if a.startswith("--hostname="))
    assert destination.replace("$HOSTNAME", "%h") == node.removeprefix("--hostname=")


def test_settings_come_from_the_configmap_and_secrets():
    for name in ("shardline-worker", "shardline-beat", "shardline-flower"):
        sources = container(name)["envFrom"]
        assert {"configMapRef": {"name": "shardline-config"}} in sources, name
        assert {"secretRef": {"name": "shardline-broker"}} in sources, name


def test_only_workers_get_the_api_key_and_as_a_file():
    for name in ("shardline-beat", "shardline-flower"):
        assert "shardline-api-key" not in yaml.safe_dump(pod(name)), name
    volume = next(v for v in pod("shardline-worker")["volumes"] if v["name"] == "api-key")
    assert volume["secret"]["secretName"] == "shardline-api-key"
    assert volume["secret"]["items"] == [{"key": "SHARDLINE_API_KEY", "path": "SHARDLINE_API_KEY"}]
    mount = next(m for m in container("shardline-worker")["volumeMounts"]
                 if m["name"] == "api-key")
    assert mount["mountPath"] == "/run/secrets" and mount["readOnly"] is True


def test_flower_has_auth_and_metrics():
    flower = container("shardline-flower")
    auth = next(e for e in flower["env"] if e["name"] == "FLOWER_BASIC_AUTH")
    assert auth["valueFrom"]["secretKeyRef"]["name"] == "shardline-flower"
    port = next(p for p in flower["ports"] if p["name"] == "http")["containerPort"]
    template = find("Deployment", "shardline-flower")["spec"]["template"]
    service = find("Service", "shardline-flower")
    for notes in (template["metadata"]["annotations"], service["metadata"]["annotations"]):
        assert notes["prometheus.io/scrape"] == "true"
        assert notes["prometheus.io/port"] == str(port)
        assert notes["prometheus.io/path"] == "/metrics"
    assert f"--port={port}" in flower["args"]
    assert flower["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert find("Deployment", "shardline-flower")["spec"]["replicas"] == 1
    selector = service["spec"]["selector"]
    assert selector.items() <= template["metadata"]["labels"].items()


def test_deployments_select_their_own_pods_and_run_unprivileged():
    for _, doc in documents():
        if doc["kind"] != "Deployment":
            continue
        template = doc["spec"]["template"]
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        security = template["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
        for c in template["spec"]["containers"]:
            assert c["image"] == "shardline", "the kustomization's images: sets registry/tag"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_secret_templates_hold_no_real_value():
    secrets = [(p, d) for p, d in documents() if d["kind"] == "Secret"]
    assert secrets
    for path, secret in secrets:
        assert path.name.endswith(".example.yaml"), f"{path}: a Secret outside the templates"
        for key, value in {**secret.get("stringData", {}), **secret.get("data", {})}.items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}.{key} looks real"


def test_configmap_values_make_valid_settings():
    data = find("ConfigMap", "shardline-config")["data"]
    fields = {k.removeprefix("SHARDLINE_").lower(): v for k, v in data.items()
              if k.startswith("SHARDLINE_")}
    settings = Settings(**fields)
    assert settings.state_uri.startswith(("s3://", "gs://")), "pods need shared storage"


def test_hpa_targets_the_worker_deployment():
    hpa = find("HorizontalPodAutoscaler", "shardline-worker")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "shardline-worker")
    assert hpa["spec"]["minReplicas"] >= 1


def test_manifests_match_the_kubernetes_schema():
    validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (offline schemas)"
    )
    errors = []
    for path, doc in documents():
        try:
            validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except validate.ValidationError as exc:
            errors.append(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert not errors, "\n".join(errors)


def test_schema_check_catches_a_misspelt_field():
    validate = pytest.importorskip("kubernetes_validate")
    broken = find("Deployment", "shardline-worker")
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 900
    with pytest.raises(validate.ValidationError):
        validate.validate(broken, KUBERNETES_VERSION, strict=True)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_kustomize_renders_the_base():
    rendered = kustomize(K8S)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert ("Deployment", "shardline-beat") in kinds
    assert not [k for k in kinds if k[0] == "Secret"], "no Secret is generated from git"
    schedule = next(d for d in rendered if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"].startswith("shardline-schedule-"))
    beat = next(d for d in rendered if d["metadata"]["name"] == "shardline-beat")
    volumes = beat["spec"]["template"]["spec"]["volumes"]
    assert {"name": "schedule", "configMap": {"name": schedule["metadata"]["name"]}} in volumes
    for d in rendered:
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shardline"


def test_kustomize_renders_an_overlay_with_the_hpa(tmp_path: Path):
    shutil.copytree(K8S, tmp_path / "base")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: batch\nresources: [../base]\ncomponents: [../base/components/worker-hpa]\n"
        "images: [{name: shardline, newName: registry.example.com/shardline, newTag: '1.0'}]\n"
    )
    rendered = kustomize(overlay)
    assert {d["metadata"]["namespace"] for d in rendered} == {"batch"}
    assert any(d["kind"] == "HorizontalPodAutoscaler" for d in rendered)
    images = {c["image"] for d in rendered if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.example.com/shardline:1.0"}


def test_network_policies_close_ingress_and_limit_egress():
    policies = {d["metadata"]["name"]: d["spec"] for _, d in documents()
                if d["kind"] == "NetworkPolicy"}
    every_pod = {"app.kubernetes.io/name": "shardline"}
    closed = [p for p in policies.values()
              if p["podSelector"]["matchLabels"] == every_pod and "Ingress" in p["policyTypes"]]
    assert closed and all(not p.get("ingress") for p in closed), "no ingress by default"
    opened = [p for p in policies.values() if p.get("ingress")]
    assert len(opened) == 1, "only Flower listens"
    (flower,) = opened
    assert flower["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "flower"
    port = next(p for p in container("shardline-flower")["ports"] if p["name"] == "http")
    assert [p["port"] for rule in flower["ingress"] for p in rule["ports"]] == [
        port["containerPort"]]
    egress = [p for p in policies.values() if "Egress" in p["policyTypes"]]
    assert len(egress) == 1 and egress[0]["podSelector"]["matchLabels"] == every_pod
    allowed = {(p["protocol"], p["port"]) for rule in egress[0]["egress"] for p in rule["ports"]}
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6379), ("TCP", 6380),
                       ("TCP", 5671), ("TCP", 5672)}
    assert all("to" not in rule or rule["to"] for rule in egress[0]["egress"])


def test_the_broker_secret_template_asks_for_a_password_and_tls():
    broker = find("Secret", "shardline-broker")["stringData"]
    for key in ("SHARDLINE_BROKER_URL", "SHARDLINE_RESULT_BACKEND"):
        url = broker[key]
        assert url.startswith("rediss://shardline:PASSWORD@"), key
        assert url.endswith("?ssl_cert_reqs=required"), "Celery needs it with rediss://"
        Settings(broker_url=broker["SHARDLINE_BROKER_URL"], result_backend=url)


def test_callers_are_limited_to_the_configmap_prefixes():
    from shared.access import AccessPolicy
    from shared.errors import AccessError

    data = find("ConfigMap", "shardline-config")["data"]
    fields = {k.removeprefix("SHARDLINE_").lower(): v for k, v in data.items()
              if k.startswith("SHARDLINE_")}
    settings = Settings(broker_url="redis://broker:6379/0", **fields)
    assert settings.input_prefixes and settings.output_prefixes
    policy = AccessPolicy.from_settings(settings)
    policy.check_input(f"{settings.input_prefixes[0]}/2026-11-26.jsonl")
    policy.check_output(f"{settings.output_prefixes[0]}/nightly")
    with pytest.raises(AccessError):
        policy.check_input(f"{settings.state_uri}/runs/x.json")
