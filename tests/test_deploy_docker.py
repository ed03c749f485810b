"""docker/*.Dockerfile and .dockerignore: hadolint-clean (no blanket ignores),
multi-stage, pinned bases, non-root, CPU and CUDA variants for the model
services, no torch in the gateway; each image's entry point imports with only
the folders its Dockerfile copies; plus the health-check script the images
and docker-compose use, run against a real gRPC server."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from tests import import_graph
from tests.test_deploy_common import (
    DOCKERFILES,
    ROOT,
    Stage,
    dockerfile_stages,
    exec_form,
    services,
    tool,
)

# Inline ignores that are allowed, each for a reason hadolint cannot see.
ALLOWED_INLINE_IGNORES = {
    "DL3006": "FROM os-${DEVICE} names a stage of the same file, not an untagged image",
    "DL3008": "Ubuntu replaces apt package versions in place; the CUDA base tag is the pin",
}
MODEL_SERVICES = ("embedder", "captioner")
# First-party packages an image may leave out although its entry point names
# them, each only from inside a function (never at import time), and why.
LEFT_OUT_ON_PURPOSE: dict[str, dict[str, str]] = {
    "gateway": {
        "embedder_service": "models in-process (embedded mode); the image calls the embedder over gRPC",
        "caption_service": "models in-process (embedded mode); the image calls the captioner over gRPC",
        "offline_training": "the `demo` command's scene generator, run from a checkout",
    },
}
TORCH_PACKAGES = {"torch", "torchvision", "open-clip-torch", "open_clip_torch", "transformers"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    proc = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_no_hadolint_config_hides_rules() -> None:
    for name in (
        ".hadolint.yaml",
        ".hadolint.yml",
        "docker/.hadolint.yaml",
        "docker/.hadolint.yml",
    ):
        assert not (ROOT / name).exists(), f"{name}: ignore rules inline, with a reason"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_inline_ignores_are_few_and_explained(dockerfile: Path) -> None:
    lines = dockerfile.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"#\s*hadolint ignore=(.+)", line.strip())
        if not match:
            continue
        rules = {r.strip() for r in match[1].split(",")}
        assert rules <= set(ALLOWED_INLINE_IGNORES), f"{dockerfile.name}:{i + 1}: {rules}"
        assert lines[i - 1].lstrip().startswith("#"), f"{dockerfile.name}:{i + 1}: say why"


def _stage_names(stages: list[Stage]) -> set[str]:
    return {s.name for s in stages if s.name}


def _expand(base: str, args: dict[str, str], device: str) -> str:
    values = {**args, "DEVICE": device}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m[1], m[0]), base)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_with_pinned_bases(dockerfile: Path) -> None:
    args, stages = dockerfile_stages(dockerfile)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    names = _stage_names(stages)
    for stage in stages:
        for device in ("cpu", "cuda"):
            base = _expand(stage.base, args, device)
            if base in names:
                continue
            _image, _, tag = base.partition(":")
            assert "$" not in base and tag and tag != "latest", f"{dockerfile.name}: {stage.base}"
            assert re.search(r"\d", tag), f"{dockerfile.name}: {base} is not a versioned tag"


def _runtime(stages: list[Stage]) -> Stage:
    return next(s for s in stages if s.name == "runtime")


@pytest.mark.parametrize("name", ["embedder", "captioner", "gateway"])
def test_runtime_is_non_root_and_runs_the_service(name: str) -> None:
    service = services()[name]
    _args, stages = dockerfile_stages(service.dockerfile)
    runtime = _runtime(stages)
    user = runtime.find("USER")[-1].args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0), user
    # The default target (last stage) is the runtime image, not `baked`.
    assert stages[-1].name in ("runtime", "final")
    if stages[-1].name == "final":
        assert stages[-1].base == "runtime" and not stages[-1].instructions
    # ENTRYPOINT is the console script whose module is this service's.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    (entry, *_rest) = exec_form(runtime.find("ENTRYPOINT")[-1].args)
    assert scripts[entry].split(":")[0] == service.entry_module
    if name == "gateway":
        assert exec_form(runtime.find("CMD")[-1].args) == ["serve"]


@pytest.mark.parametrize("name", MODEL_SERVICES)
def test_model_images_have_cpu_and_cuda_variants_and_a_baked_target(name: str) -> None:
    service = services()[name]
    args, stages = dockerfile_stages(service.dockerfile)
    assert args.get("DEVICE") == "cpu", "CPU is the default variant"
    by_name = {s.name: s for s in stages}
    assert by_name["os-cuda"].base.startswith("nvidia/cuda:")
    assert by_name["os-cpu"].base.startswith("python:")
    text = service.dockerfile.read_text(encoding="utf-8")
    assert "https://download.pytorch.org/whl/cpu" in text, "CPU torch from the PyTorch CPU index"
    assert f'"./[{name}]"' in text, f"installs the {name} extra"
    baked = by_name["baked"]
    assert baked.base == "runtime"
    env = " ".join(i.args for i in baked.find("ENV"))
    assert "HF_HUB_OFFLINE=1" in env
    runtime_env = " ".join(i.args for i in _runtime(stages).find("ENV"))
    assert "HF_HOME=/cache/huggingface" in runtime_env, "weights go to the cache volume"


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def test_gateway_image_has_no_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = _requirement_names(project["dependencies"])
    installed |= _requirement_names(project["optional-dependencies"]["gateway"])
    assert not installed & TORCH_PACKAGES, installed & TORCH_PACKAGES
    text = services()["gateway"].dockerfile.read_text(encoding="utf-8")
    assert '"./[gateway]"' in text
    assert not re.search(r"pip install[^\n]*torch", text)
    assert "COPY embedder_service" not in text and "COPY caption_service" not in text


def test_gateway_serve_path_imports_without_model_code() -> None:
    """What the gateway image runs (`imgsearch serve` with remote models and a
    Qdrant server) imports nothing the image leaves out."""
    code = """
import sys
for name in ("torch", "torchvision", "open_clip", "transformers", "embedder_service", "caption_service"):
    sys.modules[name] = None  # import fails, as in the image
from search_gateway.cli import build_parser
build_parser().parse_args(["serve"])
import search_gateway.__main__
from search_gateway.server import start_gateway_server
from search_gateway.assemble import build_captioner, build_embedder
from search_gateway.settings import GatewaySettings
import search_gateway.store.qdrant_store
s = GatewaySettings(embedder_address="embedder:50051", captioner_address="captioner:50052")
build_embedder(s)
build_captioner(s)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def _dockerignore_excludes(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins (`!` re-includes)."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        pattern = pattern.removeprefix("**/")
        if any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern)
            for p in prefixes
        ):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_exactly_what_the_images_copy() -> None:
    sources: set[str] = set()
    for dockerfile in DOCKERFILES:
        _args, stages = dockerfile_stages(dockerfile)
        for stage in stages:
            for ins in stage.find("COPY"):
                words = [w for w in ins.args.split() if not w.startswith("--")]
                if "--from" in ins.args:
                    continue
                sources.update(w.rstrip("/") for w in words[:-1])
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignore_excludes(source), f".dockerignore drops {source}"
        if (ROOT / source).is_dir():
            assert not _dockerignore_excludes(f"{source}/x.py"), source
    for unwanted in (
        ".git",
        ".venv",
        "tests",
        "bench",
        "eval",
        "offline_training",
        "sample_images",
        "imgsearch/__pycache__",
    ):
        assert _dockerignore_excludes(unwanted), unwanted


@pytest.mark.parametrize("name", ["embedder", "captioner", "gateway"])
async def test_health_check_script_against_a_real_server(name: str) -> None:
    """docker/grpc_health_check.py exits 0 only once the service's health name
    (as served by the shared bootstrap) is SERVING."""
    from imgsearch.serving.server import ServiceBinding, create_server

    health_name = services()[name].health_name
    running = await create_server(
        "127.0.0.1:0",
        [ServiceBinding(object(), lambda _servicer, _server: None, health_name)],
        max_message_bytes=1 << 20,
    )

    async def check(service: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "docker" / "grpc_health_check.py"),
            f"127.0.0.1:{running.port}",
            service,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(proc.wait(), 60)

    try:
        assert await check(health_name) == 1  # NOT_SERVING while loading
        await running.set_serving(True)
        assert await check(health_name) == 0
        assert await check("") == 0
        assert await check("imgsearch.v1.NoSuchService") == 1
    finally:
        await running.server.stop(0)


# --- per image: the import closure of the entry point, from the copied folders only ---


def copied_packages(dockerfile: Path) -> set[str]:
    """The first-party packages a Dockerfile COPYs from the build context."""
    _args, stages = dockerfile_stages(dockerfile)
    copied: set[str] = set()
    for stage in stages:
        for ins in stage.find("COPY"):
            if "--from" in ins.args:
                continue
            words = [w for w in ins.args.split() if not w.startswith("--")]
            for source in words[:-1]:
                if (ROOT / source.rstrip("/") / "__init__.py").is_file():
                    copied.add(source.rstrip("/"))
    return copied


def entry_module(dockerfile: Path) -> str:
    """The module of the console script the runtime stage's ENTRYPOINT runs."""
    _args, stages = dockerfile_stages(dockerfile)
    (entry, *_rest) = exec_form(_runtime(stages).find("ENTRYPOINT")[-1].args)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    return str(scripts[entry].split(":")[0])


def image_closure(name: str) -> tuple[set[str], set[str]]:
    """(copied packages, every first-party module the entry point can reach),
    after checking that everything reached lies in a copied folder."""
    dockerfile = services()[name].dockerfile
    copied = copied_packages(dockerfile)
    left_out = frozenset(LEFT_OUT_ON_PURPOSE.get(name, {}))
    reached, skipped = import_graph.closure([entry_module(dockerfile)], skip=left_out)
    eager = [e for e in skipped if not e.lazy]
    assert not eager, f"{name}: imported at import time but left out of the image: {eager}"
    outside = sorted(m for m in reached if m.split(".")[0] not in copied)
    assert not outside, (
        f"{dockerfile.name} copies {sorted(copied)}, but its entry point reaches {outside}"
    )
    return copied, reached


@pytest.mark.parametrize("name", ["embedder", "captioner", "gateway"])
def test_image_imports_its_entry_point_closure_from_copied_folders_only(name: str) -> None:
    """Imports, for real, every module the image's entry point can reach (at
    module level or in a function), in a fresh interpreter whose only
    first-party code is the folders the Dockerfile copies (linked into a temp
    dir); the other first-party packages are blocked so the venv's editable
    install cannot stand in for them, and the gateway gets no torch."""
    copied, reached = image_closure(name)
    blocked = sorted(import_graph.first_party() - copied)
    if name == "gateway":
        blocked += ["torch", "torchvision", "open_clip", "transformers"]
    with tempfile.TemporaryDirectory() as tmp:
        for package in copied:
            (Path(tmp) / package).symlink_to(ROOT / package, target_is_directory=True)
        code = f"""
import importlib, sys
sys.path.insert(0, {tmp!r})
for blocked in {blocked!r}:
    sys.modules[blocked] = None  # ImportError, as in the image
outside = []
for name in {sorted(reached)!r}:
    module = importlib.import_module(name)
    if not (getattr(module, "__file__", None) or "").startswith({tmp!r}):
        outside.append((name, module.__file__))
assert not outside, f"imported from outside the image's folders: {{outside}}"
"""
        proc = subprocess.run(
            [sys.executable, "-I", "-c", code],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_product_images_carry_no_training_or_evaluation_code() -> None:
    for name in ("embedder", "captioner", "gateway"):
        copied = copied_packages(services()[name].dockerfile)
        assert not copied & {"offline_training", "eval", "bench", "tests", "scripts"}, name
