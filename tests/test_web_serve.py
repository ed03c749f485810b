"""Where the HTTP side runs: beside the gRPC gateway (`serve --http-port`),
where both transports must give the same answers, and alone over the
embedded index (`imgsearch ui`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from google.protobuf import json_format

from imgsearch.serving.auth import bearer
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from tests.web_harness import ALICE_KEY, metadata_json, settings_for, write_scenes


async def _call(url: str, key: str, body: dict | None = None) -> dict:  # type: ignore[type-arg]
    """One request over real HTTP (async: the server shares this event loop)."""
    import aiohttp

    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        if body is None:
            async with http.get(url, headers=headers) as r:
                assert r.status == 200
                return await r.json()  # type: ignore[no-any-return]
        async with http.post(url, json=body, headers=headers) as r:
            assert r.status == 200
            return await r.json()  # type: ignore[no-any-return]


async def test_one_contract_two_transports(tmp_path: Path) -> None:
    """The gateway with --http-port: the same requests over gRPC and over
    JSON give the same messages."""
    from grpc import aio

    from search_gateway.server import start_gateway_server

    keys = tmp_path / "keys"
    keys.write_text(f"{ALICE_KEY} alice\n")
    root = tmp_path / "scenes"
    records = write_scenes(root, 8, seed=11)
    settings = settings_for(
        tmp_path, http_port=0, read_roots=str(root), api_keys_file=str(keys), captions=False
    )
    server = await start_gateway_server(settings)
    assert server.web is not None
    channel = aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = gateway_pb2_grpc.SearchGatewayStub(channel)
    meta = bearer(ALICE_KEY)
    try:
        for n, record in enumerate(records):
            req = json_format.ParseDict(
                {"path": record["file"], "metadata": metadata_json(record, n)},
                gateway_pb2.IngestRequest(),
            )
            if n % 2:  # half through each transport
                [result] = [r async for r in stub.Ingest(iter([req]), metadata=meta)]
                assert result.status == gateway_pb2.INGEST_STATUS_ADDED
            else:
                body = json_format.MessageToDict(req)
                answer = await _call(f"{server.web.url}v1/images", ALICE_KEY, body)
                assert answer["status"] == "INGEST_STATUS_ADDED"
        camera = records[0]["camera_id"]
        request = {
            "text": "a blue square",
            "k": 5,
            "filter": {"must": [{"matchAny": {"key": "camera_id", "keywords": [camera, "x"]}}]},
        }
        over_grpc = await stub.Search(
            json_format.ParseDict(request, gateway_pb2.SearchRequest()), metadata=meta
        )
        over_http = json_format.ParseDict(
            await _call(f"{server.web.url}v1/search", ALICE_KEY, request),
            gateway_pb2.SearchResponse(),
        )
        assert over_http == over_grpc and over_grpc.hits
        stats = await stub.Stats(gateway_pb2.StatsRequest(), metadata=meta)
        http_stats = json_format.ParseDict(
            await _call(f"{server.web.url}v1/stats", ALICE_KEY), gateway_pb2.StatsResponse()
        )
        assert http_stats == stats and stats.count == len(records)
        # HTTP calls are counted beside the RPCs, by route and gRPC code.
        sample = server.metrics.registry.get_sample_value
        labels = {"method": "HTTP /v1/search", "code": "OK"}
        assert sample("imgsearch_gateway_requests_total", labels) == 1
        assert sample("imgsearch_gateway_requests_total", {"method": "Search", "code": "OK"}) == 1
    finally:
        await channel.close()
        await server.stop(1)


@pytest.mark.slow
def test_imgsearch_ui_serves_the_embedded_index(tmp_path: Path) -> None:
    """`imgsearch ui` over an embedded data folder: the page, ingest by path
    under --root, search, and a clean stop on Ctrl-C."""
    root = tmp_path / "scenes"
    records = write_scenes(root, 3, seed=3)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "search_gateway.cli", "ui",
            "--data-dir", str(tmp_path / "data"), "--model", "offline-tiny", "--pretrained", "",
            "--port", "0", "--root", str(root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("imgsearch page: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=30) as r:
            assert b'<input id="q"' in r.read()
        for record in records:
            answer = _post_sync(url + "v1/images", {"path": record["file"]})
            assert answer["status"] == "INGEST_STATUS_ADDED"
        hits = _post_sync(url + "v1/search", {"text": "a red circle", "k": 5})["hits"]
        assert {h["uri"] for h in hits} == {r["file"] for r in records}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _post_sync(url: str, body: dict) -> dict:  # type: ignore[type-arg]
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]
