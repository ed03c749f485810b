"""A gateway with its HTTP side on loopback, for the JSON and browser tests.

The server (embedded core: the shipped offline-tiny CLIP and BLIP, Qdrant on
disk) runs on its own event loop in a background thread, so tests, and
Playwright's synchronous API, talk to it over real HTTP like a browser does.
Two tenants get the demo's sample scenes through POST /v1/images, so the
ingest endpoint builds the world the other tests read.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgsearch.serving.auth import ApiKeys
from offline_models.registry import OFFLINE_MODEL_NAME
from search_gateway.settings import GatewaySettings
from tests.threaded_server import ServerThread

ALICE_KEY = "alice-web-key-0123456789"
BOB_KEY = "bob-web-key-0123456789ab"
KEYS = {"alice": ALICE_KEY, "bob": BOB_KEY}
PLACES = [{"lat": 48.8566, "lon": 2.3522}, {"lat": 35.6762, "lon": 139.6503}]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebWorld:
    url: str
    thread: ServerThread
    roots: list[Path]
    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)  # tenant -> point ids
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> sample record

    def call(
        self,
        path: str,
        body: Any = None,
        *,
        tenant: str | None = None,
        method: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One HTTP request; `tenant` sends that tenant's key."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        h = {"content-type": "application/json"} if data is not None else {}
        if tenant is not None:
            h["authorization"] = f"Bearer {self.keys[tenant]}"
        h.update(headers or {})
        verb = method or ("POST" if data is not None else "GET")
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=verb, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return Reply(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, dict(e.headers), e.read())

    def search(self, tenant: str | None = None, **request: Any) -> list[str]:
        """Hit ids of a SearchRequest (JSON field names), as the page shows them."""
        reply = self.call("/v1/search", request, tenant=tenant)
        assert reply.status == 200, reply.body
        return [h["id"] for h in reply.json()["hits"]]


def settings_for(data_dir: Path, **extra: Any) -> GatewaySettings:
    return GatewaySettings(
        data_dir=str(data_dir),
        model=OFFLINE_MODEL_NAME,
        pretrained="",
        caption_model=OFFLINE_MODEL_NAME,
        device="cpu",
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        caption_mode="inline",
        **extra,
    )


def metadata_json(record: dict[str, Any], n: int) -> dict[str, Any]:
    """A sample record's metadata as imgsearch.v1.Value messages in JSON."""
    return {
        "camera_id": {"stringValue": record["camera_id"]},
        "timestamp": {"timestampValue": record["timestamp"].replace("+00:00", "Z")},
        "tags": {"stringListValue": {"values": record["tags"]}},
        "location": {"geoValue": PLACES[n % 2]},
    }


def write_scenes(folder: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """The demo's sample scenes (same generator, same sidecar fields)."""
    from search_gateway.cli.demo import SIDE_CAR, write_samples

    write_samples(folder, count, seed)
    lines = (folder / SIDE_CAR).read_text().splitlines()
    records = []
    for line in lines:
        entry = json.loads(line)
        records.append({"file": str((folder / entry["file"]).resolve()), **entry["metadata"]})
    return records


@dataclass
class Population:
    tenant: str
    folder: Path
    count: int
    seed: int


def start_world(
    tmp: Path,
    populations: Sequence[Population],
    *,
    api_keys: bool = True,
    settings_extra: dict[str, Any] | None = None,
) -> Iterator[WebWorld]:
    """Starts the server, ingests each population as its tenant, yields the world."""
    from search_gateway.assemble import build_core
    from search_gateway.web.server import start_web_server

    roots = [p.folder for p in populations]
    samples = {p.tenant: write_scenes(p.folder, p.count, p.seed) for p in populations}
    settings = settings_for(tmp / "data", **(settings_extra or {}))
    keys = ApiKeys({KEYS[t]: t for t in samples}) if api_keys else None

    class Running:
        def __init__(self) -> None:
            self.core: Any = None
            self.web: Any = None

        async def start(self) -> Running:
            self.core = await build_core(settings, read_roots=roots)
            self.web = await start_web_server(
                self.core, settings, port=0, host="127.0.0.1", read_roots=roots, api_keys=keys
            )
            return self

        async def stop(self, grace: float) -> None:
            await self.web.stop()
            await self.core.close()

    running = Running()
    with ServerThread(running.start) as thread:
        world = WebWorld(running.web.url, thread, roots, keys=KEYS if api_keys else {})
        for tenant, records in samples.items():
            world.ids[tenant] = []
            for n, record in enumerate(records):
                reply = world.call(
                    "/v1/images",
                    {
                        "path": record["file"],
                        "metadata": metadata_json(record, n),
                        "options": {"withCaptions": True},
                    },
                    tenant=tenant if api_keys else None,
                )
                result = reply.json()
                assert reply.status == 200 and result["status"] == "INGEST_STATUS_ADDED", result
                world.ids[tenant].append(result["id"])
                world.records[result["id"]] = {**record, "location": PLACES[n % 2]}
        yield world
