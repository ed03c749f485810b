"""open_clip's model and tokenizer modules, imported without `open_clip/__init__`.

`import open_clip` (or any `open_clip.x`, which runs the package's __init__
first) imports every model family open_clip supports: timm, transformers
(the CoCa and Hugging Face text towers) and torchvision, which imports
torch._dynamo and with it sympy and triton. On a 2-core machine that is
several seconds, while a text query needs only `model.py` (CLIP and its text
tower), `transformer.py` and `tokenizer.py`.

So this module loads open_clip's own source files under a private package
name, `embedder_service._open_clip_narrow` (`.model`, `.tokenizer`,
`.pretrained`, ...): the same code, not a copy, and never the `open_clip`
entry of sys.modules, so a later `import open_clip` elsewhere in the process
is the ordinary, complete one. Inside the private package the absolute
imports of the heavy families are answered locally (through the modules' own
`__builtins__`, so nothing global changes and other threads are unaffected):

* `timm` and `transformers` raise ImportError, the case open_clip itself
  handles (`timm_model.timm = None`, `hf_model.transformers = None`): towers
  that need them are not built here (text_tower falls back to the full model);
* except `transformers.AutoTokenizer`, which `tokenizer.HFTokenizer.__init__`
  imports: it is answered by `hf_tokenizer.AutoTokenizer`, the same Rust
  `tokenizers` tokenizer that transformers' fast tokenizer drives, set up the
  way transformers sets it up (tests compare the ids);
* `torchvision.ops.misc.FrozenBatchNorm2d` (imported by `utils.py`, used only
  to freeze the batch norms of ResNet image towers) is a stand-in that
  imports torchvision's class when it is instantiated.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PACKAGE = f"{__package__}._open_clip_narrow"
_lock = threading.Lock()


def open_clip_dir() -> Path:
    """Where open_clip's source files are (found without importing it)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise ImportError("open_clip is not installed")
    return Path(spec.origin).parent


def module(name: str) -> types.ModuleType:
    """open_clip's submodule `name` ("model", "tokenizer", "pretrained"), narrow."""
    with _lock:
        if PACKAGE not in sys.modules:
            _install()
        return importlib.import_module(f"{PACKAGE}.{name}")


class _FrozenBatchNorm2d:
    """Stand-in for torchvision.ops.misc.FrozenBatchNorm2d: the real one on use."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from torchvision.ops.misc import FrozenBatchNorm2d

        return FrozenBatchNorm2d(*args, **kwargs)


def _torchvision_misc() -> types.ModuleType:
    shim = types.ModuleType("torchvision.ops.misc")
    shim.FrozenBatchNorm2d = _FrozenBatchNorm2d  # type: ignore[attr-defined]
    return shim


def _transformers() -> types.ModuleType:
    from embedder_service.hf_tokenizer import AutoTokenizer

    shim = types.ModuleType("transformers")
    shim.AutoTokenizer = AutoTokenizer  # type: ignore[attr-defined]
    return shim


def _narrow_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> types.ModuleType:
    if level == 0:
        top = name.partition(".")[0]
        if top == "timm":
            raise ImportError(f"{name} is not imported by the narrow open_clip ({__name__})")
        if top == "transformers":
            if name == "transformers" and set(fromlist or ()) <= {"AutoTokenizer"}:
                return _transformers()
            raise ImportError(f"{name} is not imported by the narrow open_clip ({__name__})")
        if name == "torchvision.ops.misc":
            return _torchvision_misc()
    return builtins.__import__(name, globals, locals, fromlist or (), level)


_BUILTINS = {**vars(builtins), "__import__": _narrow_import}


class _Loader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module: types.ModuleType) -> None:
        module.__builtins__ = _BUILTINS  # type: ignore[attr-defined]
        super().exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds `PACKAGE.x` as open_clip's `x.py`, loaded by _Loader."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        prefix = PACKAGE + "."
        if not fullname.startswith(prefix) or "." in fullname[len(prefix) :]:
            return None
        source = self.root / f"{fullname[len(prefix) :]}.py"
        if not source.is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, source, loader=_Loader(fullname, str(source))
        )


def _install() -> None:
    root = open_clip_dir()
    package = types.ModuleType(PACKAGE, "open_clip's modules, narrowly imported")
    package.__path__ = [str(root)]
    package.__spec__ = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    package.__spec__.submodule_search_locations = [str(root)]
    # First: the path finder would otherwise load them with its own loader.
    sys.meta_path.insert(0, _Finder(root))
    sys.modules[PACKAGE] = package
