"""What the deployment tests share: the three services as their code defines
them (settings class, env prefix, health name, entry point), the tools (kubectl's
built-in kustomize, hadolint) from the dev extra, and parsers for compose files,
rendered manifests and Dockerfiles. Everything is offline and static.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
COMPONENTS = sorted(p.parent for p in (K8S / "components").glob("*/kustomization.yaml"))
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "docker-compose.gpu.yml"]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))

# Environment variables the images and manifests may set that belong to the
# libraries or the runtime, not to imgsearch's settings. Anything else must be
# a settings field (or an imgsearch logging variable).
THIRD_PARTY_ENV = frozenset(
    {
        "PATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "TORCH_HOME",
        "XDG_CACHE_HOME",
    }
)


@dataclass(frozen=True)
class Service:
    """One imgsearch service, as its own code defines it."""

    name: str  # compose service / k8s app label
    settings: type[BaseSettings]
    health_name: str  # the grpc.health.v1 service name it serves
    entry_module: str  # the module whose main() the container's command runs
    image: str  # repository name in compose and the manifests
    dockerfile: Path

    @property
    def prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    def env_names(self) -> set[str]:
        """Every environment variable name the service reads."""
        names = set(logging_env_names())
        nested = self.settings.model_config.get("env_nested_delimiter")
        for field_name, field in self.settings.model_fields.items():
            alias = field.validation_alias
            name = alias.upper() if isinstance(alias, str) else f"{self.prefix}{field_name}".upper()
            names.add(name)
            section = field.annotation
            if nested and isinstance(section, type) and issubclass(section, BaseModel):
                names.update(f"{name}{nested}{sub}".upper() for sub in section.model_fields)
        names.update(getattr(self.settings, "flat_env_names", lambda: [])())
        return names

    def effective(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
        """The settings the service would start with under `env` (validated)."""
        for key in list(os.environ):
            if key.startswith("IMGSEARCH_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return self.settings()


@functools.cache
def services() -> dict[str, Service]:
    from caption_service import server as caption_server
    from caption_service.settings import CaptionerSettings
    from embedder_service import server as embedder_server
    from embedder_service.settings import EmbedderSettings
    from search_gateway import server as gateway_server
    from search_gateway.settings import GatewaySettings

    docker = ROOT / "docker"
    return {
        "embedder": Service(
            "embedder",
            EmbedderSettings,
            embedder_server.SERVICE_NAME,
            "embedder_service.__main__",
            "imgsearch/embedder",
            docker / "embedder.Dockerfile",
        ),
        "captioner": Service(
            "captioner",
            CaptionerSettings,
            caption_server.SERVICE_NAME,
            "caption_service.__main__",
            "imgsearch/captioner",
            docker / "captioner.Dockerfile",
        ),
        "gateway": Service(
            "gateway",
            GatewaySettings,
            gateway_server.SERVICE_NAME,
            "search_gateway.cli",
            "imgsearch/gateway",
            docker / "gateway.Dockerfile",
        ),
    }


def image_repository(image: str) -> str:
    """'registry/name:tag@sha256:...' -> 'registry/name'."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def service_for_image(image: str) -> Service | None:
    repo = image_repository(image)
    return next((s for s in services().values() if s.image == repo), None)


@functools.cache
def logging_env_names() -> frozenset[str]:
    """IMGSEARCH_LOG_* names read by the shared logging set-up (read from its source)."""
    tree = ast.parse((ROOT / "imgsearch" / "serving" / "logs.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and ast.unparse(node.func.value) == "os.environ"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    assert names, "imgsearch/serving/logs.py reads no env var any more?"
    return frozenset(names)


# -- tools ----------------------------------------------------------------------------
def tool(name: str) -> str:
    """A CLI installed by the dev extra (scripts dir of this interpreter, then PATH)."""
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the dev extra (pip install -e '.[dev]')")
    return found


@functools.cache
def render(kustomization_dir: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize DIR` (kustomize built into kubectl), parsed."""
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kustomize build {kustomization_dir} failed:\n{proc.stderr}"
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def render_with_components(tmp: Path, base: Path, components: list[Path]) -> list[dict[str, Any]]:
    """Renders `base` plus `components` through a throw-away overlay in `tmp`."""
    rel = lambda p: os.path.relpath(p, tmp)  # noqa: E731 - kustomize wants relative paths
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel(base)],
                "components": [rel(c) for c in components],
            }
        )
    )
    return list(render(tmp))


def by_kind(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str) -> dict:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def workload_containers(objects) -> Iterator[tuple[dict, dict]]:  # type: ignore[no-untyped-def]
    """(workload, container) for every container of every Deployment/StatefulSet."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj, container


def init_containers(objects) -> Iterator[tuple[dict, dict]]:  # type: ignore[no-untyped-def]
    """(workload, init container) for every init container."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in obj["spec"]["template"]["spec"].get("initContainers", []):
                yield obj, container


def container_env(objects, container: dict) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """Env of a container: envFrom ConfigMaps, then env (secret refs map to None)."""
    config_maps = by_kind(objects, "ConfigMap")
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in config_maps, f"envFrom names a ConfigMap that is not rendered: {ref}"
        env.update(config_maps[ref].get("data", {}))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


# -- compose ----------------------------------------------------------------------------
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolation_names(text: str) -> set[str]:
    return {m["name"] for m in _INTERPOLATION.finditer(text)}


def interpolate(value: Any) -> Any:
    """Compose's ${VAR:-default}, with nothing set in the shell (defaults apply)."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m["default"] or "", value)
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def load_compose(*files: Path) -> dict[str, Any]:
    """The files merged the way `docker compose -f a -f b` merges these ones
    (mappings deep-merged, later files win), interpolated with defaults."""
    merged: dict[str, Any] = {}
    for f in files:
        _merge(merged, yaml.safe_load(f.read_text(encoding="utf-8")))
    return interpolate(merged)


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# -- Dockerfiles ------------------------------------------------------------------------
@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def find(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def dockerfile_stages(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile: continuations joined,
    comments dropped."""
    logical: list[Instruction] = []
    buf, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        logical.append(Instruction(start, keyword.upper(), args.strip()))
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in logical:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        elif not stages:
            if ins.keyword == "ARG":
                key, _, default = ins.args.partition("=")
                global_args[key] = default
        else:
            stages[-1].instructions.append(ins)
    return global_args, stages


def env_instruction_pairs(args: str) -> dict[str, str]:
    """ENV KEY=VALUE ... (or the legacy ENV KEY VALUE)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def exec_form(args: str) -> list[str]:
    import json

    value = json.loads(args)
    assert isinstance(value, list), args
    return [str(v) for v in value]


def test_tools_are_installed() -> None:
    """The dev extra brings kubectl (with kustomize) and hadolint; both run offline."""
    out = subprocess.run(
        [tool("kubectl"), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert "Kustomize Version" in out
    out = subprocess.run(
        [tool("hadolint"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert "dockerfile linter" in out.lower()


def test_deployment_files_exist() -> None:
    assert {p.name for p in OVERLAYS} >= {"cpu", "gpu"}
    assert {p.stem for p in DOCKERFILES} >= {"embedder", "captioner", "gateway"}
    for f in COMPOSE_FILES:
        assert f.is_file(), f
    assert (ROOT / ".dockerignore").is_file()
    assert (ROOT / "deploy" / "README.md").is_file()
