"""No drift between the deployment files and the services' code.

The settings classes (embedder_service/settings.py, caption_service/settings.py,
search_gateway/settings.py) are the single source of truth. Every environment
variable that docker-compose, the Kubernetes manifests or the Dockerfiles give
a service must be one that service reads, with a value it accepts; every port
must be the one it listens on with that configuration; every health check must
name a service it serves; every address must point at the right service.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.test_deploy_common import (
    COMPOSE_FILES,
    OVERLAYS,
    THIRD_PARTY_ENV,
    Service,
    by_kind,
    compose_env,
    container_env,
    dockerfile_stages,
    env_instruction_pairs,
    exec_form,
    init_containers,
    interpolation_names,
    load_compose,
    render,
    service_for_image,
    services,
    workload_containers,
)

QDRANT_HTTP_PORT = 6333  # Qdrant's own default REST port


def _check_env_names(service: Service, names: set[str], where: str) -> None:
    unknown = {n for n in names if n not in service.env_names() and n not in THIRD_PARTY_ENV}
    assert not unknown, f"{where}: {service.name} reads no {sorted(unknown)}"
    # Another service's variables in this container are a mistake, not config.
    others = {
        n
        for n in names
        for other in services().values()
        if other is not service
        and other.prefix != "IMGSEARCH_"
        and n.startswith(other.prefix)
        and n not in service.env_names()
    }
    assert not others, f"{where}: {service.name} was given {sorted(others)}"


def _image_env(service: Service, target: str = "runtime") -> dict[str, str]:
    """ENV of the image's runtime (or another) stage, following FROM <stage>."""
    _args, stages = dockerfile_stages(service.dockerfile)
    by_name = {s.name: s for s in stages}
    chain, stage = [], by_name[target]
    while stage is not None:
        chain.append(stage)
        stage = by_name.get(stage.base.replace("${DEVICE}", "cpu"))
    env: dict[str, str] = {}
    for st in reversed(chain):
        for ins in st.find("ENV"):
            env.update(env_instruction_pairs(ins.args))
    return env


# -- Dockerfiles -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["embedder", "captioner", "gateway"])
def test_dockerfile_env_ports_and_health_check(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = services()[name]
    _args, stages = dockerfile_stages(service.dockerfile)
    targets = [s.name for s in stages if s.name in ("runtime", "baked")]
    for target in targets:
        env = _image_env(service, target)
        _check_env_names(service, set(env), f"{service.dockerfile.name} ({target})")
        imgsearch_env = {
            k: v for k, v in env.items() if k.startswith("IMGSEARCH_") and "$" not in v
        }
        settings = service.effective(imgsearch_env, monkeypatch)
        runtime = next(s for s in stages if s.name == "runtime")
        exposed = {int(p) for i in runtime.find("EXPOSE") for p in i.args.split()}
        assert exposed == {settings.port, settings.metrics_port}, service.dockerfile.name
        (health,) = runtime.find("HEALTHCHECK")
        command = exec_form(health.args.split(" CMD ", 1)[1])
        address, health_name = command[-2:]
        assert address == f"127.0.0.1:{settings.port}"
        assert health_name == service.health_name


def _http(settings: Any) -> set[int]:
    """The gateway's HTTP port (JSON API + page) where the deployment turns it on."""
    port = getattr(settings, "http_port", -1)
    return {port} if port >= 0 else set()


# -- docker compose -------------------------------------------------------------------------
@pytest.fixture(params=[COMPOSE_FILES[:1], COMPOSE_FILES], ids=["cpu", "gpu"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_compose(*request.param)


def test_compose_interpolation_variables_are_settings() -> None:
    """${IMGSEARCH_...} variables a user sets in the shell are settings names."""
    for path in COMPOSE_FILES:
        for name in interpolation_names(path.read_text(encoding="utf-8")):
            if name.startswith("IMGSEARCH_"):
                assert any(name in s.env_names() for s in services().values()), (
                    f"{path.name}: ${{{name}}} is no service's setting"
                )


def test_compose_env_ports_and_health_checks(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    effective = {}
    for name, service in services().items():
        spec = compose["services"][name]
        env = {**_image_env(service), **compose_env(spec)}
        _check_env_names(service, set(compose_env(spec)), f"compose service {name}")
        imgsearch_env = {k: v for k, v in env.items() if k.startswith("IMGSEARCH_")}
        settings = service.effective(imgsearch_env, monkeypatch)
        effective[name] = settings
        ports = {int(str(p).split("/")[0]) for p in spec.get("expose", [])}
        for published in spec.get("ports", []):
            ports.add(int(str(published).rsplit(":", 1)[1].split("/")[0]))
        assert ports == {settings.port, settings.metrics_port, *_http(settings)}, name
        test = spec["healthcheck"]["test"]
        assert test[0] == "CMD" and test[-2:] == [f"127.0.0.1:{settings.port}", service.health_name]
        grace = spec["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) > settings.grace_s, (
            f"{name}: docker would SIGKILL before the {settings.grace_s}s drain ends"
        )
    gateway = effective["gateway"]
    for model in ("embedder", "captioner"):
        host, _, port = getattr(gateway, f"{model}_address").partition(":")
        assert host == model and int(port) == effective[model].port
    url = urlsplit(gateway.qdrant_url)
    assert url.hostname == "qdrant" and url.port == QDRANT_HTTP_PORT
    assert str(QDRANT_HTTP_PORT) in {str(p) for p in compose["services"]["qdrant"]["expose"]}


def test_compose_gpu_variant_selects_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = load_compose(*COMPOSE_FILES)
    for name in ("embedder", "captioner"):
        service = services()[name]
        settings = service.effective(compose_env(compose["services"][name]), monkeypatch)
        assert settings.device == "cuda"


# -- Kubernetes -------------------------------------------------------------------------
@pytest.fixture(params=OVERLAYS, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    return render(request.param)


def _settings_per_container(rendered, monkeypatch):  # type: ignore[no-untyped-def]
    out = {}
    for workload, container in workload_containers(rendered):
        service = service_for_image(container["image"])
        if service is None:
            assert not any(k.startswith("IMGSEARCH_") for k in container_env(rendered, container))
            continue
        env = container_env(rendered, container)
        _check_env_names(service, set(env), f"k8s {workload['metadata']['name']}")
        values = {**_image_env(service), **{k: v for k, v in env.items() if v is not None}}
        imgsearch_env = {k: v for k, v in values.items() if k.startswith("IMGSEARCH_")}
        out[service.name] = (workload, container, service.effective(imgsearch_env, monkeypatch))
    assert set(out) == set(services())
    return out


def test_k8s_env_ports_probes_and_grace(rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (workload, container, settings) in _settings_per_container(
        rendered, monkeypatch
    ).items():
        service = services()[name]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        expected = {"grpc": settings.port, "metrics": settings.metrics_port}
        for port in _http(settings):
            expected["http"] = port
        assert ports == expected, name
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container[kind]["grpc"]
            assert probe["port"] == settings.port, f"{name} {kind}"
            assert probe.get("service", "") in (service.health_name, ""), f"{name} {kind}"
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/port") == str(settings.metrics_port), name
        pod = workload["spec"]["template"]["spec"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
        needed = settings.grace_s + pre_stop.get("seconds", 0)
        assert pod["terminationGracePeriodSeconds"] > needed, (
            f"{name}: the kubelet would SIGKILL before the {settings.grace_s}s drain ends"
        )


def test_k8s_gateway_addresses_point_at_headless_services(
    rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    per = _settings_per_container(rendered, monkeypatch)
    gateway = per["gateway"][2]
    svcs = by_kind(rendered, "Service")
    for model in ("embedder", "captioner"):
        host, _, port = getattr(gateway, f"{model}_address").partition(":")
        svc = svcs[host]
        assert svc["spec"]["clusterIP"] == "None", f"{host}: round_robin needs a headless Service"
        pod_labels = per[model][0]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items(), f"{host} selects {model}"
        # Headless: clients connect to the pod's port directly.
        assert int(port) == per[model][2].port
    url = urlsplit(gateway.qdrant_url)
    qdrant_ports = {p["port"] for p in svcs[url.hostname]["spec"]["ports"]}
    assert url.port in qdrant_ports and url.port == QDRANT_HTTP_PORT


def test_k8s_secret_env_is_a_setting(rendered) -> None:
    """Env from Secrets (value None here) must still be settings names."""
    for _workload, container in workload_containers(rendered):
        service = service_for_image(container["image"])
        for item in container.get("env", []):
            if service is not None and "valueFrom" in item:
                assert item["name"] in service.env_names(), item["name"]


def test_k8s_gateway_waits_for_the_embedder_it_is_configured_with(
    rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's init container health-checks exactly the address and
    health name the gateway itself will use."""
    per = _settings_per_container(rendered, monkeypatch)
    gateway_workload = per["gateway"][0]
    (init,) = [c for w, c in init_containers(rendered) if w is gateway_workload]
    assert service_for_image(init["image"]) is services()["gateway"], "same image as the gateway"
    words = " ".join(init["command"]).split()
    script = words.index("/opt/imgsearch/grpc_health_check.py")
    address, health_name = words[script + 1], words[script + 2].rstrip(";")
    assert address == per["gateway"][2].embedder_address
    assert health_name == services()["embedder"].health_name
