"""The JSON endpoints over real HTTP: one contract with gRPC (the proto
messages in JSON), gRPC codes as HTTP statuses, API keys and tenancy, and
nothing served from outside the read roots."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from imgsearch.v1 import gateway_pb2
from tests.web_harness import Population, WebWorld, start_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    tmp = tmp_path_factory.mktemp("web_api")
    yield from start_world(
        tmp,
        [Population("alice", tmp / "alice", 10, seed=7), Population("bob", tmp / "bob", 4, 8)],
    )


def test_search_answers_a_search_response_in_proto_json(world: WebWorld) -> None:
    reply = world.call("/v1/search", {"text": "a red circle", "k": 5}, tenant="alice")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    parsed = json_format.Parse(reply.body, gateway_pb2.SearchResponse())  # one contract
    assert len(parsed.hits) == 5
    assert {h.id for h in parsed.hits} <= set(world.ids["alice"])
    assert parsed.model == "offline-tiny"
    scores = [h.score for h in parsed.hits]
    assert scores == sorted(scores, reverse=True)
    first = parsed.hits[0]
    assert first.caption  # captioned inline at ingest
    assert first.payload["camera_id"].string_value == world.records[first.id]["camera_id"]


def test_filters_and_paging_follow_the_proto(world: WebWorld) -> None:
    camera = world.records[world.ids["alice"][0]]["camera_id"]
    flt = {"must": [{"match": {"key": "camera_id", "keyword": camera}}]}
    ids = world.search("alice", text="a shape", k=100, filter=flt)
    expected = {i for i in world.ids["alice"] if world.records[i]["camera_id"] == camera}
    assert set(ids) == expected
    whole = world.search("alice", text="a shape", k=10)
    assert world.search("alice", text="a shape", k=4, offset=4) == whole[4:8]


def test_get_delete_stats_and_point(world: WebWorld) -> None:
    alice = world.ids["alice"]
    reply = world.call("/v1/points:get", {"ids": [alice[0], world.ids["bob"][0]]}, tenant="alice")
    got = reply.json()
    assert [p["id"] for p in got["points"]] == [alice[0]]
    assert got["missing"] == [world.ids["bob"][0]]  # another tenant's id: as unknown
    one = world.call(f"/v1/points/{alice[1]}", tenant="alice").json()
    assert one["id"] == alice[1] and one["uri"] == world.records[alice[1]]["file"]
    stats = world.call("/v1/stats", tenant="alice").json()
    assert int(stats["count"]) == len(alice)  # int64 is a string in JSON
    assert stats["model"] == "offline-tiny"
    # Deleting bob's point with alice's key deletes nothing.
    reply = world.call("/v1/points:delete", {"ids": [world.ids["bob"][0]]}, tenant="alice")
    assert reply.status == 200 and int(reply.json()["deleted"]) == 0
    assert world.call(f"/v1/points/{world.ids['bob'][0]}", tenant="bob").status == 200


def test_ingest_of_bytes_and_per_image_failure(world: WebWorld, tmp_path: Path) -> None:
    data = Path(world.records[world.ids["alice"][2]]["file"]).read_bytes()
    body = {"data": base64.b64encode(data).decode(), "uri": "upload.png"}
    result = world.call("/v1/images", body, tenant="bob").json()
    assert result["status"] == "INGEST_STATUS_ADDED"  # alice's content, bob's own point
    again = world.call("/v1/images", body, tenant="bob").json()
    assert again["status"] == "INGEST_STATUS_ALREADY_PRESENT" and again["id"] == result["id"]
    world.call("/v1/points:delete", {"ids": [result["id"]]}, tenant="bob")
    broken = {"data": base64.b64encode(b"not an image").decode(), "uri": "x.jpg"}
    failed = world.call("/v1/images", broken, tenant="bob")
    assert failed.status == 200  # as in the gRPC stream: the image failed, not the call
    assert failed.json()["status"] == "INGEST_STATUS_FAILED"
    assert failed.json()["errorCode"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("path", "body", "http", "code", "says"),
    [
        ("/v1/search", {"text": "x", "k": 0}, 400, "INVALID_ARGUMENT", "k must be within"),
        ("/v1/search", {"text": "x", "k": 5, "kk": 1}, 400, "INVALID_ARGUMENT", 'no field named "kk"'),
        ("/v1/search", {"text": "x", "k": "many"}, 400, "INVALID_ARGUMENT", "Failed to parse k field"),
        ("/v1/search", {"pointId": "0b8a3c1e-0000-5000-8000-000000000000", "k": 3}, 404, "NOT_FOUND", "no point"),
        ("/v1/search", {"k": 3}, 400, "INVALID_ARGUMENT", "no query"),
        (
            "/v1/search",
            {"text": "x", "k": 3, "filter": {"must": [{"range": {"key": "width"}}]}},
            400, "INVALID_ARGUMENT", "must[0]",
        ),
        ("/v1/points:get", {"ids": ["nope"]}, 400, "INVALID_ARGUMENT", "ids[0]: malformed point id"),
        ("/v1/points:delete", {}, 400, "INVALID_ARGUMENT", "either ids or a filter"),
        ("/v1/points/0b8a3c1e-0000-5000-8000-000000000000", None, 404, "NOT_FOUND", "no point"),
        ("/v1/nothing-here", None, 404, "NOT_FOUND", "Not Found"),
    ],
)  # fmt: skip
def test_errors_map_to_http_statuses(
    world: WebWorld, path: str, body: object, http: int, code: str, says: str
) -> None:
    reply = world.call(path, body, tenant="alice")
    assert reply.status == http, reply.body
    error = reply.json()
    assert error["status"] == code
    assert error["code"] == gateway_code(code)
    assert says in error["message"]
    assert error["details"] == []


def gateway_code(name: str) -> int:
    import grpc

    return int(grpc.StatusCode[name].value[0])


def test_bad_json_is_400_with_the_parser_message(world: WebWorld) -> None:
    reply = world.call("/v1/search", raw=b'{"text": "x", "k": 3', tenant="alice")
    assert reply.status == 400
    assert "Failed to load JSON" in reply.json()["message"]


def test_body_must_be_json_typed(world: WebWorld) -> None:
    """A form post (what a foreign page can send without a CORS preflight) is refused."""
    reply = world.call(
        "/v1/points:delete",
        raw=b'{"ids": []}',
        tenant="alice",
        headers={"content-type": "text/plain"},
    )
    assert reply.status == 415


def test_body_size_is_limited(world: WebWorld) -> None:
    huge = b'{"text": "' + b"a" * (17 * 1024 * 1024) + b'", "k": 1}'
    reply = world.call("/v1/search", raw=huge, tenant="alice")
    assert reply.status == 413
    assert reply.json()["status"] == "RESOURCE_EXHAUSTED"


def test_api_keys_are_required_and_checked(world: WebWorld) -> None:
    missing = world.call("/v1/stats")
    assert missing.status == 401 and missing.json()["status"] == "UNAUTHENTICATED"
    wrong = world.call("/v1/stats", headers={"authorization": "Bearer not-a-key-0123456789"})
    assert wrong.status == 401 and "invalid API key" in wrong.json()["message"]
    other_header = world.call("/v1/stats", headers={"x-api-key": world.keys["bob"]})
    assert other_header.status == 200 and int(other_header.json()["count"]) == 4
    caps = world.call("/v1/capabilities")  # open: the page needs it to ask for a key
    assert caps.status == 200 and caps.json()["authRequired"] is True
    assert "pointId" in caps.json()["searchRequestFields"]
    assert world.call("/").status == 200  # the page itself holds no data


def test_thumbnails_only_to_their_tenant(world: WebWorld) -> None:
    alice_id, bob_id = world.ids["alice"][0], world.ids["bob"][0]
    own = world.call(f"/v1/thumbnails/{alice_id}", tenant="alice")
    assert own.status == 200 and own.headers["Content-Type"] in ("image/jpeg", "image/webp")
    assert "private" in own.headers["Cache-Control"]
    assert world.call(f"/v1/thumbnails/{bob_id}", tenant="alice").status == 404
    assert world.call(f"/v1/points/{bob_id}/original", tenant="alice").status == 404
    assert world.call(f"/v1/thumbnails/{bob_id}").status == 401
    assert world.call(f"/v1/thumbnails/{bob_id}", tenant="bob").status == 200
    original = world.call(f"/v1/points/{alice_id}/original", tenant="alice")
    assert original.status == 200
    assert original.body == Path(world.records[alice_id]["file"]).read_bytes()


def test_nothing_outside_the_roots_or_the_static_folder(world: WebWorld, tmp_path: Path) -> None:
    for path in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/etc/passwd",
    ):
        reply = world.call(path)
        assert reply.status in (403, 404), path
        assert b"create_app" not in reply.body
    assert world.call("/static/app.js").status == 200
    # A point whose file lies outside the read roots: no original, no thumbnail.
    outside = tmp_path / "outside.png"
    outside.write_bytes(Path(world.records[world.ids["alice"][3]]["file"]).read_bytes())
    data = base64.b64encode(outside.read_bytes()).decode()
    result = world.call("/v1/images", {"data": data, "uri": str(outside)}, tenant="bob").json()
    assert world.call(f"/v1/points/{result['id']}/original", tenant="bob").status == 404
    if not world.call("/v1/capabilities").json()["thumbnailStore"]:
        assert world.call(f"/v1/thumbnails/{result['id']}", tenant="bob").status == 404
    refused = world.call("/v1/images", {"path": "/etc/hostname"}, tenant="bob").json()
    assert (
        refused["status"] == "INGEST_STATUS_FAILED" and refused["errorCode"] == "PERMISSION_DENIED"
    )
    world.call("/v1/points:delete", {"ids": [result["id"]]}, tenant="bob")


def test_page_headers_forbid_foreign_content(world: WebWorld) -> None:
    page = world.call("/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    html = page.body.decode()
    assert "http://" not in html and "https://" not in html  # no CDN, no external fonts
    for asset in ("/static/app.js", "/static/style.css"):
        text = world.call(asset).body.decode()
        assert "http://" not in text and "https://" not in text and "@import" not in text
