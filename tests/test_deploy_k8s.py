"""deploy/k8s: every overlay builds with kustomize (kubectl's), every object
validates against the Kubernetes schemas offline (kubernetes-validate, strict:
unknown fields fail), and the objects have the shape the issue asks for."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
from kubernetes_validate.utils import latest_version

from tests.test_deploy_common import (
    COMPONENTS,
    K8S,
    OVERLAYS,
    by_kind,
    container_env,
    image_repository,
    init_containers,
    render,
    render_with_components,
    service_for_image,
    services,
    workload_containers,
)

# The oldest Kubernetes the manifests support (native gRPC probes are GA since
# 1.27, preStop `sleep` is on by default since 1.30) and the newest schemas shipped.
K8S_VERSIONS = ["1.30.0", latest_version()]
CLUSTER_SCOPED = {"Namespace"}


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas() -> Iterator[None]:
    """kubernetes-validate re-reads its (large) schema files for every object;
    reading each once keeps these tests fast."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            kubernetes_validate.utils,
            "schema_contents",
            functools.cache(kubernetes_validate.utils.schema_contents),
        )
        yield


def overlay_id(path: Path) -> str:
    return path.name


@pytest.fixture(params=OVERLAYS, ids=overlay_id)
def rendered(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    return render(request.param)


def _validate(objects: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> None:
    errors = []
    for obj in objects:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                errors.append(
                    f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {where}: {exc.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(exc.message)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("kustomization", [K8S / "base", *OVERLAYS], ids=lambda p: p.name)
def test_builds_and_validates_against_kubernetes_schemas(kustomization: Path) -> None:
    objects = render(kustomization)
    assert objects
    _validate(objects)


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda p: p.name)
def test_components_build_and_validate(component: Path, tmp_path: Path) -> None:
    base = render(K8S / "overlays" / "cpu")
    objects = render_with_components(tmp_path, K8S / "overlays" / "cpu", [component])
    assert len(objects) > len(base)
    _validate(objects)
    assert all(
        o["metadata"].get("namespace") == "imgsearch"
        for o in objects
        if o["kind"] not in CLUSTER_SCOPED
    )


def test_everything_in_one_namespace(rendered) -> None:
    namespaces = by_kind(rendered, "Namespace")
    assert list(namespaces) == ["imgsearch"]
    for obj in rendered:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == "imgsearch", obj["metadata"]["name"]


def test_a_deployment_service_and_account_per_service(rendered) -> None:
    deployments = by_kind(rendered, "Deployment")
    svcs = by_kind(rendered, "Service")
    accounts = by_kind(rendered, "ServiceAccount")
    for name in services():
        assert name in deployments and name in svcs and name in accounts, name
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        assert pod["automountServiceAccountToken"] is False
    # gRPC port named `grpc` everywhere (microservices-demo convention).
    for name in services():
        assert "grpc" in {p["name"] for p in svcs[name]["spec"]["ports"]}


def test_model_services_are_headless_and_gateway_is_not(rendered) -> None:
    svcs = by_kind(rendered, "Service")
    for name in ("embedder", "captioner"):
        assert svcs[name]["spec"].get("clusterIP") == "None", f"{name} must be headless"
        assert not svcs[name]["spec"].get("publishNotReadyAddresses"), name
    assert svcs["gateway"]["spec"].get("clusterIP") != "None"


def test_services_select_pods_and_target_named_ports(rendered) -> None:
    workloads = [o for o in rendered if o["kind"] in ("Deployment", "StatefulSet")]
    for svc in by_kind(rendered, "Service").values():
        selector = svc["spec"]["selector"]
        matches = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"service {svc['metadata']['name']} selects {len(matches)}"
        ports = {
            p.get("name"): p["containerPort"]
            for c in matches[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                assert target in ports, f"{svc['metadata']['name']}: no container port {target}"
                assert ports[target] == port["port"], svc["metadata"]["name"]
            else:
                assert target in ports.values()


def test_grpc_probes_with_a_startup_budget_for_model_loading(rendered) -> None:
    for _workload, container in workload_containers(rendered):
        service = service_for_image(container["image"])
        if service is None:
            continue
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert "grpc" in container[kind], f"{service.name} {kind} must be a native grpc probe"
        for kind in ("startupProbe", "readinessProbe"):
            assert container[kind]["grpc"]["service"] == service.health_name
        startup = container["startupProbe"]
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        if service.name != "gateway":
            assert budget >= 300, f"{service.name}: startup probe allows only {budget}s"


def test_hardened_security_context(rendered) -> None:
    for workload, container in [*workload_containers(rendered), *init_containers(rendered)]:
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert not sc.get("privileged"), name
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        is_main = container in pod["containers"]
        if is_main and service_for_image(container["image"]) is not None:
            assert "/tmp" in mounts, f"{name}: read-only root needs a writable /tmp"


def test_requests_and_limits_everywhere(rendered) -> None:
    for workload, container in [*workload_containers(rendered), *init_containers(rendered)]:
        res = container["resources"]
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(section, {})), (
                f"{workload['metadata']['name']}: {section}"
            )


def test_images_are_pinned(rendered) -> None:
    for _workload, container in [*workload_containers(rendered), *init_containers(rendered)]:
        image = container["image"]
        tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"unpinned image {image}"


def test_gpu_overlay_puts_model_pods_on_gpus() -> None:
    gpu = render(K8S / "overlays" / "gpu")
    cpu = render(K8S / "overlays" / "cpu")
    deployments = by_kind(gpu, "Deployment")
    for name in ("embedder", "captioner"):
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["nodeSelector"], name
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"]), name
        assert container["image"].endswith("-cuda"), container["image"]
        env = container_env(gpu, container)
        assert env[f"{services()[name].prefix}DEVICE"] == "cuda"
    gateway = deployments["gateway"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in gateway["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in gateway
    for _workload, container in workload_containers(cpu):
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        if service_for_image(container["image"]) is not None:
            assert not container["image"].endswith("-cuda")


def test_embedder_scales_with_an_hpa(rendered) -> None:
    hpas = by_kind(rendered, "HorizontalPodAutoscaler")
    hpa = hpas["embedder"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "embedder",
    }
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    embedder = by_kind(rendered, "Deployment")["embedder"]
    assert "replicas" not in embedder["spec"], "the HPA owns the embedder's replica count"
    # Utilisation targets need requests to be computed against.
    (container,) = embedder["spec"]["template"]["spec"]["containers"]
    assert "cpu" in container["resources"]["requests"]


def test_every_workload_has_a_pod_disruption_budget(rendered) -> None:
    pdbs = by_kind(rendered, "PodDisruptionBudget").values()
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in by_kind(rendered, "HorizontalPodAutoscaler").values()
    }
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        labels = obj["spec"]["template"]["metadata"]["labels"]
        matching = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        name = obj["metadata"]["name"]
        assert len(matching) == 1, f"{name}: {len(matching)} PDBs"
        spec = matching[0]["spec"]
        replicas = (
            hpas[name]["spec"]["minReplicas"] if name in hpas else obj["spec"].get("replicas", 1)
        )
        # A budget that can never be met blocks node drains forever.
        if "minAvailable" in spec:
            assert spec["minAvailable"] < replicas, f"{name}: minAvailable blocks every eviction"


def _policies_for(policies: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        match = selector.get("matchLabels", {}).items() <= labels.items()
        for expr in selector.get("matchExpressions", []):
            assert expr["operator"] == "In"
            match = match and labels.get(expr["key"]) in expr["values"]
        if match and "Ingress" in policy["spec"].get("policyTypes", ["Ingress"]):
            out.append(policy)
    return out


def test_network_policies_expose_only_the_gateway(rendered) -> None:
    policies = list(by_kind(rendered, "NetworkPolicy").values())
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies), (
        "a default-deny ingress policy"
    )
    gateway_labels = by_kind(rendered, "Deployment")["gateway"]["spec"]["template"]["metadata"][
        "labels"
    ]
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = obj["metadata"]["name"]
        labels = obj["spec"]["template"]["metadata"]["labels"]
        rules = [r for p in _policies_for(policies, labels) for r in p["spec"].get("ingress", [])]
        assert rules, f"{name}: nothing may reach it"
        for rule in rules:
            sources = rule.get("from")
            if name == "gateway":
                continue
            assert sources, f"{name}: ingress from anywhere"
            for source in sources:
                assert "namespaceSelector" not in source and "ipBlock" not in source, name
                selected = source["podSelector"]["matchLabels"]
                assert (
                    selected.items() <= gateway_labels.items() or selected.items() <= labels.items()
                ), f"{name}: reachable from {selected}"
    gateway_rules = [
        r for p in _policies_for(policies, gateway_labels) for r in p["spec"].get("ingress", [])
    ]
    assert any("from" not in r for r in gateway_rules), "the gateway must be reachable from outside"
    open_ports = [{port["port"] for port in r.get("ports", [])} for r in gateway_rules]
    assert all(ports == {"grpc", "http"} for ports in open_ports), (
        "only the gateway's gRPC and HTTP ports are open to everyone (not its metrics)"
    )


def test_qdrant_is_a_statefulset_on_a_persistent_volume(rendered) -> None:
    qdrant = by_kind(rendered, "StatefulSet")["qdrant"]
    assert (
        image_repository(qdrant["spec"]["template"]["spec"]["containers"][0]["image"])
        == "qdrant/qdrant"
    )
    (claim,) = qdrant["spec"]["volumeClaimTemplates"]
    (container,) = qdrant["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/qdrant/storage"
    assert qdrant["spec"]["serviceName"] in by_kind(rendered, "Service")
    assert "QDRANT_URL" not in str(container.get("env", []))
