"""docker-compose.yml (+ the GPU override): valid against the Compose
Specification schema (vendored in deploy/schemas/), and shaped as documented:
Qdrant with its own health check and volume, start order gated on health,
only the gateway's port published."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.test_deploy_common import COMPOSE_FILES, ROOT, load_compose, services

SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The file says draft-07 with an https URL jsonschema does not map; be explicit.
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_vendored_schema_is_the_documented_file() -> None:
    source = (ROOT / "deploy" / "schemas" / "SOURCE.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in source, "deploy/schemas/SOURCE.md must give the vendored schema's sha256"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_validates_against_the_compose_specification(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_rejects_a_misspelt_key() -> None:
    """The schema is strict enough to matter (additionalProperties: false)."""
    document = yaml.safe_load(COMPOSE_FILES[0].read_text(encoding="utf-8"))
    document["services"]["gateway"]["helthcheck"] = document["services"]["gateway"]["healthcheck"]
    assert list(_validator().iter_errors(document))


@pytest.fixture(params=[COMPOSE_FILES[:1], COMPOSE_FILES], ids=["cpu", "gpu"])
def compose(request: pytest.FixtureRequest) -> dict:
    return load_compose(*request.param)


def test_one_container_per_service_plus_qdrant(compose: dict) -> None:
    assert set(compose["services"]) == {"qdrant", *services()}
    for name, service in services().items():
        spec = compose["services"][name]
        assert spec["build"]["dockerfile"] == str(service.dockerfile.relative_to(ROOT))
        assert spec["image"].split(":")[0] == service.image


def test_qdrant_official_image_volume_and_health_check(compose: dict) -> None:
    qdrant = compose["services"]["qdrant"]
    image, _, tag = qdrant["image"].partition(":")
    assert image == "qdrant/qdrant" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), qdrant["image"]
    volume, _, target = qdrant["volumes"][0].partition(":")
    assert target == "/qdrant/storage" and volume in compose["volumes"], "named volume"
    test = qdrant["healthcheck"]["test"]
    assert "/readyz" in " ".join(test)
    # The official image has neither curl nor wget.
    assert not {"curl", "wget"} & set(" ".join(test).split())


def test_every_service_has_a_health_check_and_start_is_gated(compose: dict) -> None:
    svcs = compose["services"]
    for name, spec in svcs.items():
        assert spec["healthcheck"]["test"], name
    depends = svcs["gateway"]["depends_on"]
    assert depends["qdrant"]["condition"] == "service_healthy"
    assert depends["embedder"]["condition"] == "service_healthy"
    assert "captioner" in depends
    for name in ("embedder", "captioner"):
        start = svcs[name]["healthcheck"]["start_period"]
        assert start.endswith("s") and int(start[:-1]) >= 300, f"{name}: model download time"


def test_only_the_gateway_port_is_published(compose: dict) -> None:
    published = {name for name, spec in compose["services"].items() if spec.get("ports")}
    assert published == {"gateway"}


def test_model_cache_volume_is_shared_and_hardened(compose: dict) -> None:
    for name in services():
        spec = compose["services"][name]
        assert spec["read_only"] is True, name
        assert spec["cap_drop"] == ["ALL"], name
        assert "/tmp" in spec["tmpfs"], name
    for name in ("embedder", "captioner"):
        volume, _, target = compose["services"][name]["volumes"][0].partition(":")
        assert (volume, target) == ("model-cache", "/cache")


def test_gpu_override_reserves_gpus_for_model_services_only() -> None:
    cpu = load_compose(COMPOSE_FILES[0])
    gpu = load_compose(*COMPOSE_FILES)
    for name in ("embedder", "captioner"):
        devices = gpu["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
        assert gpu["services"][name]["build"]["args"]["DEVICE"] == "cuda"
        assert gpu["services"][name]["image"].endswith("-cuda")
        assert "deploy" not in cpu["services"][name]
        assert cpu["services"][name]["build"]["args"]["DEVICE"] == "cpu"
    assert "deploy" not in gpu["services"]["gateway"]
