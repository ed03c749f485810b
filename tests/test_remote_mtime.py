"""Photos sent as bytes keep the file-mtime fallback for their time: the
client sends the file's mtime (IngestRequest.file_mtime), the gateway uses it
last, after the user's metadata and the photo's EXIF, as it does for a path
it reads itself. Through the real gateway over gRPC (offline-tiny model)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from offline_models.registry import OFFLINE_MODEL_NAME
from search_gateway.core import SearchQuery
from search_gateway.ingest import IngestItem, IngestStatus
from search_gateway.settings import GatewaySettings
from tests.test_exif import make_photo

MTIME = datetime(2023, 3, 4, 5, 6, 7, tzinfo=timezone.utc).timestamp()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[object]:
    from search_gateway.server import start_gateway_server

    settings = GatewaySettings(
        data_dir=str(tmp_path / "data"), collection="photos", model=OFFLINE_MODEL_NAME,
        pretrained="", captions=False, host="127.0.0.1", port=0, metrics_port=-1,
    )  # fmt: skip
    running = await start_gateway_server(settings)
    try:
        yield running
    finally:
        await running.stop(1)


async def _aiter(items: list[IngestItem]) -> AsyncIterator[IngestItem]:
    for item in items:
        yield item


async def test_client_mtime_is_the_last_resort(server) -> None:  # type: ignore[no-untyped-def]
    from search_gateway.remote_api import RemoteGateway

    client = RemoteGateway(f"127.0.0.1:{server.port}")
    items = [
        IngestItem(data=make_photo(when=None), uri="plain.jpg", file_mtime=MTIME),
        IngestItem(data=make_photo(), uri="exif.jpg", file_mtime=MTIME),  # EXIF wins
        IngestItem(
            data=make_photo(when=None, make="Nikon"), uri="mine.jpg", file_mtime=MTIME,
            metadata={"timestamp": "2020-01-01T00:00:00Z"},  # the user wins
        ),
        IngestItem(data=make_photo(when=None, make="Leica"), uri="old-client.jpg"),  # no mtime sent
    ]
    try:
        out = [o async for o in client.ingest(_aiter(items))]
        assert [o.status for o in out] == [IngestStatus.ADDED] * 4, out
        hits, _ = await client.get([o.id for o in out])
    finally:
        await client.close()
    by_uri = {h.uri: h.payload for h in hits}
    assert by_uri["plain.jpg"]["timestamp"] == "2023-03-04T05:06:07Z"
    assert by_uri["plain.jpg"]["timestamp_source"] == "file_mtime"
    assert by_uri["exif.jpg"]["timestamp"] == "2024-05-01T12:30:00Z"
    assert by_uri["exif.jpg"]["timestamp_source"] == "exif"
    assert by_uri["mine.jpg"]["timestamp"] == "2020-01-01T00:00:00Z"
    assert by_uri["mine.jpg"]["timestamp_source"] == "user"
    assert "timestamp" not in by_uri["old-client.jpg"]


async def test_a_bad_mtime_fails_only_its_image(server) -> None:  # type: ignore[no-untyped-def]
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = gateway_pb2_grpc.SearchGatewayStub(channel)
        too_late = Timestamp(seconds=10**13)  # past year 9999
        requests = [
            gateway_pb2.IngestRequest(data=make_photo(when=None), uri="bad.jpg", file_mtime=too_late),
            gateway_pb2.IngestRequest(data=make_photo(make="Sony"), uri="good.jpg"),
        ]
        results = [r async for r in stub.Ingest(iter(requests))]
    assert [r.status for r in results] == [
        gateway_pb2.INGEST_STATUS_FAILED,
        gateway_pb2.INGEST_STATUS_ADDED,
    ]
    assert results[0].error_code == "INVALID_ARGUMENT" and "file_mtime" in results[0].reason


@pytest.mark.slow  # a CLI subprocess that loads the model
async def test_cli_through_a_gateway_sends_the_mtime(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "no-exif.jpg").write_bytes(make_photo(when=None))
    (photos / "exif.jpg").write_bytes(make_photo(make="Pentax"))
    for name in ("no-exif.jpg", "exif.jpg"):
        os.utime(photos / name, (MTIME, MTIME))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    gw = f"127.0.0.1:{server.port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "search_gateway.cli", "--gateway", gw, "index", str(photos),
        "--no-progress", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, (out, err)
    from search_gateway.remote_api import RemoteGateway

    client = RemoteGateway(gw)
    try:
        hits = await client.search(SearchQuery(image=make_photo(), k=10))
    finally:
        await client.close()
    by_name = {Path(h.uri).name: h.payload for h in hits}
    assert set(by_name) == {"no-exif.jpg", "exif.jpg"}
    assert by_name["no-exif.jpg"]["timestamp"] == "2023-03-04T05:06:07Z"
    assert by_name["no-exif.jpg"]["timestamp_source"] == "file_mtime"
    assert by_name["exif.jpg"]["timestamp_source"] == "exif"
