"""The committed stubs in imgsearch/v1 must match what protoc makes from protos/."""

from __future__ import annotations

import filecmp
from pathlib import Path

from scripts.generate_stubs import REPO, generate


def test_committed_stubs_match_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = sorted((tmp_path / "imgsearch" / "v1").glob("*.py*"))
    assert fresh, "protoc produced nothing"
    committed = REPO / "imgsearch" / "v1"
    stale = [p.name for p in fresh if not filecmp.cmp(p, committed / p.name, shallow=False)]
    assert not stale, f"stubs out of date, run scripts/generate_stubs.py: {stale}"


def test_stubs_import_as_a_normal_package() -> None:
    from imgsearch.v1 import captioner_pb2_grpc, embedder_pb2, gateway_pb2

    assert embedder_pb2.DESCRIPTOR.package == "imgsearch.v1"
    assert gateway_pb2.DESCRIPTOR.services_by_name["SearchGateway"]
    assert captioner_pb2_grpc.CaptionerStub
