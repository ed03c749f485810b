"""Regenerate the committed Python stubs in imgsearch/v1 from protos/.

The stubs are committed (not generated at install time) so that a plain
`pip install` needs no protoc, and containers carry no grpcio-tools.
tests/test_stubs_in_sync.py fails when they drift from the .proto files.

Usage: python scripts/generate_stubs.py [OUTPUT_ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"


def generate(output_root: Path) -> list[Path]:
    """Runs protoc on every .proto under protos/, writing below output_root."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"  # well-known types
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return protos


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO
    generate(out)
    print(f"stubs written under {out / 'imgsearch' / 'v1'}")
