"""Ingest by path as a hostile or careless client does it, through real gRPC
(issue 12): every odd path is that item's FAILED result with a documented
error_code, the stream goes on, the other images are stored, nothing blocks,
and a refused path's result tells nothing about where links point. Plus the
request-shape rules: uri length, response size, NaN threshold, unknown mode,
the decompression bomb's message."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import decompression_bomb_png, encode_image, pattern
from tests.gateway_harness import Models, gateway_settings
from tests.threaded_server import ServerThread

ADDED = gateway_pb2.INGEST_STATUS_ADDED
FAILED = gateway_pb2.INGEST_STATUS_FAILED
STORED = {
    gateway_pb2.INGEST_STATUS_ADDED,
    gateway_pb2.INGEST_STATUS_ALREADY_PRESENT,
    gateway_pb2.INGEST_STATUS_DUPLICATE,
}
PATH_CODES = {"INVALID_ARGUMENT", "PERMISSION_DENIED", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
MAX_FILE_BYTES = 100_000
MAX_RESPONSE_BYTES = 64 * 1024
MAX_PIXELS = 10_000_000


@dataclass
class Gateway:
    stub: gateway_pb2_grpc.SearchGatewayStub
    root: Path  # a read root, full of odd files
    secret: Path  # outside every root


def odd_tree(base: Path) -> tuple[Path, Path, socket.socket]:
    """A read root holding one of every kind of thing a path can name."""
    root, outside = base / "root", base / "outside"
    (root / "dir" / "sub").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.jpg"
    secret.write_bytes(encode_image(pattern(90)))
    (root / "good.jpg").write_bytes(encode_image(pattern(91)))
    (root / "dir" / "good2.jpg").write_bytes(encode_image(pattern(92)))
    (root / "big.bin").write_bytes(b"\x00" * (MAX_FILE_BYTES + 1))
    (root / "text.jpg").write_bytes(b"not an image")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "sock"))
    (root / "loop").symlink_to(root / "loop")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "zero").symlink_to("/dev/zero")  # a device under the roots (/dev is one)
    (root / "out").symlink_to(secret)
    (root / "outdir").symlink_to(outside)
    (root / "dangling").symlink_to(root / "nothing.jpg")
    (root / "fifo_link").symlink_to(root / "fifo")
    return root, secret, sock


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from search_gateway.server import start_gateway_server
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    base = tmp_path_factory.mktemp("paths")
    config, ckpt = build_tiny_clip(base / "clip", name="tiny-clip-paths")
    models = Models(config, ckpt, build_tiny_blip(base / "blip"))
    root, secret, sock = odd_tree(base)
    settings_ = gateway_settings(
        models,
        base / "data",
        read_roots=os.pathsep.join([str(root), "/dev"]),
        max_file_bytes=MAX_FILE_BYTES,
        max_response_bytes=MAX_RESPONSE_BYTES,
        max_image_pixels=MAX_PIXELS,
        captions=False,
    )
    with (
        ServerThread(lambda: start_gateway_server(settings_)) as thread,
        grpc.insecure_channel(f"127.0.0.1:{thread.server.port}") as channel,
    ):
        yield Gateway(gateway_pb2_grpc.SearchGatewayStub(channel), root, secret)
    sock.close()


def ingest(stub: gateway_pb2_grpc.SearchGatewayStub, reqs: list, timeout: float = 60) -> list:
    return list(stub.Ingest(iter(reqs), timeout=timeout))


def by_path(path: str) -> gateway_pb2.IngestRequest:
    return gateway_pb2.IngestRequest(path=path)


def test_every_odd_path_is_one_failed_item(gateway: Gateway) -> None:
    r = str(gateway.root)
    cases = [
        (f"{r}/good.jpg", "", ""),
        (f"{r}/bad\x00name.jpg", "INVALID_ARGUMENT", "NUL"),
        (f"{r}/loop", "INVALID_ARGUMENT", "loop"),
        (f"{r}/loop_a", "INVALID_ARGUMENT", "loop"),
        ("~nosuchuser_imgsearch/x.jpg", "PERMISSION_DENIED", "outside"),
        (f"{r}/fifo", "INVALID_ARGUMENT", "named pipe"),
        (f"{r}/fifo_link", "INVALID_ARGUMENT", "named pipe"),
        (f"{r}/sock", "INVALID_ARGUMENT", "socket"),
        (f"{r}/zero", "INVALID_ARGUMENT", "device"),
        ("/dev/null", "INVALID_ARGUMENT", "device"),
        (f"{r}/dir", "INVALID_ARGUMENT", "directory"),
        (f"{r}/" + "a" * 5000, "INVALID_ARGUMENT", "limit is 4096"),
        (f"{r}/" + "b" * 300 + ".jpg", "INVALID_ARGUMENT", "too long"),
        (f"{r}/new\nline.jpg", "INVALID_ARGUMENT", "control characters"),
        (f"{r}/esc\x1b[31m.jpg", "INVALID_ARGUMENT", "control characters"),
        (str(gateway.secret), "PERMISSION_DENIED", "outside"),
        (f"{r}/../outside/secret.jpg", "PERMISSION_DENIED", "outside"),
        (f"{r}/out", "PERMISSION_DENIED", "outside"),
        (f"{r}/outdir/secret.jpg", "PERMISSION_DENIED", "outside"),
        (f"{r}/big.bin", "RESOURCE_EXHAUSTED", f"up to {MAX_FILE_BYTES} bytes"),
        (f"{r}/missing.jpg", "NOT_FOUND", "no such file"),
        (f"{r}/dangling", "NOT_FOUND", "no such file"),
        (f"{r}/good.jpg/x", "NOT_FOUND", "no such file"),
        (f"{r}/text.jpg", "INVALID_ARGUMENT", "not a recognised image"),
        (f"{r}/dir/good2.jpg", "", ""),
    ]
    reqs = [by_path(p) for p, _, _ in cases]
    reqs.insert(3, gateway_pb2.IngestRequest(data=encode_image(pattern(93)), uri="bytes.jpg"))
    reqs.insert(7, gateway_pb2.IngestRequest(uri="neither data nor path"))
    started = time.monotonic()
    results = ingest(gateway.stub, reqs, timeout=30)
    assert time.monotonic() - started < 20  # nothing blocked on the FIFO
    assert [x.index for x in results] == list(range(len(reqs)))
    bytes_result = results.pop(3)
    no_source = results.pop(6)  # sent at 7, before the pop above
    assert bytes_result.status in STORED
    assert no_source.status == FAILED and no_source.error_code == "INVALID_ARGUMENT"
    assert "neither bytes nor a path" in no_source.reason
    for (path, code, words), res in zip(cases, results, strict=True):
        if not code:
            assert res.status in STORED, (path, res)
            continue
        assert res.status == FAILED, (path[:80], res)
        assert res.error_code == code, (path[:80], res)
        assert words.lower() in res.reason.lower(), (path[:80], res.reason)
        assert len(res.reason) < 600 and len(res.uri) <= 4096
        # Nothing about the file system beyond what the client sent.
        assert str(gateway.secret) not in res.reason + res.uri or path == str(gateway.secret)
        assert "/dev/zero" not in res.reason + res.uri
    stored = [x.id for x in (bytes_result, results[0], results[-1])]
    got = gateway.stub.Get(gateway_pb2.GetRequest(ids=stored), timeout=30)
    assert len(got.points) == 3 and not got.missing


def test_refused_link_echoes_only_what_was_sent(gateway: Gateway) -> None:
    sent = f"{gateway.root}/out"
    [res] = ingest(gateway.stub, [by_path(sent)])
    assert res.error_code == "PERMISSION_DENIED"
    assert res.uri == sent and "secret" not in res.reason and "outside/" not in res.reason
    [res] = ingest(gateway.stub, [gateway_pb2.IngestRequest(path=sent, uri="my-label")])
    assert res.uri == "my-label"


def test_fifos_leave_no_thread_blocked(gateway: Gateway) -> None:
    """Many FIFO paths in a row, then bytes: all answered at once."""
    fifo = by_path(f"{gateway.root}/fifo")
    for _ in range(5):
        results = ingest(gateway.stub, [fifo] * 20, timeout=10)
        assert {x.error_code for x in results} == {"INVALID_ARGUMENT"}
    started = time.monotonic()
    [res] = ingest(gateway.stub, [gateway_pb2.IngestRequest(data=encode_image(pattern(94)))])
    assert res.status in STORED and time.monotonic() - started < 10


def test_uri_has_a_length_limit(gateway: Gateway) -> None:
    long_uri = "u" * 5000
    results = ingest(
        gateway.stub,
        [
            gateway_pb2.IngestRequest(data=encode_image(pattern(95)), uri=long_uri),
            gateway_pb2.IngestRequest(data=encode_image(pattern(96)), uri="u" * 4096),
        ],
    )
    assert results[0].status == FAILED and results[0].error_code == "INVALID_ARGUMENT"
    assert "limit is 4096" in results[0].reason and len(results[0].uri) == 4096
    assert results[1].status == ADDED


def test_responses_stay_within_the_server_limit(gateway: Gateway) -> None:
    """Points near every limit (4096-char uri, ~16 KB metadata): Search leaves
    out what does not fit and says so; Get refuses with RESOURCE_EXHAUSTED."""
    note = common_pb2.Value(string_value="n" * 15_000)
    reqs = [
        gateway_pb2.IngestRequest(
            data=encode_image(pattern(200 + i)),
            uri=f"{i:04d}" + "x" * 4092,
            metadata={"note": note, "big_batch": common_pb2.Value(bool_value=True)},
        )
        for i in range(6)
    ]
    results = ingest(gateway.stub, reqs)
    assert all(x.status in STORED for x in results), results
    flt = gateway_pb2.Filter(
        must=[gateway_pb2.Condition(match=gateway_pb2.Match(key="big_batch", boolean=True))]
    )
    query = encode_image(pattern(200))
    resp = gateway.stub.Search(
        gateway_pb2.SearchRequest(image=query, k=100, filter=flt), timeout=30
    )
    assert resp.truncated and 0 < len(resp.hits) < 6
    assert resp.ByteSize() <= MAX_RESPONSE_BYTES
    rest = gateway.stub.Search(
        gateway_pb2.SearchRequest(image=query, k=100, offset=len(resp.hits), filter=flt),
        timeout=30,
    )
    assert len(resp.hits) + len(rest.hits) <= 6 and rest.ByteSize() <= MAX_RESPONSE_BYTES
    small = gateway.stub.Search(gateway_pb2.SearchRequest(image=query, k=1, filter=flt), timeout=30)
    assert not small.truncated and len(small.hits) == 1
    with pytest.raises(grpc.RpcError) as err:
        gateway.stub.Get(gateway_pb2.GetRequest(ids=[x.id for x in results]), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_RESPONSE_BYTES) in err.value.details()


@pytest.mark.parametrize(
    "request_",
    [
        gateway_pb2.SearchRequest(text="red", k=3, score_threshold=math.nan),
        gateway_pb2.SearchRequest(text="red", k=3, mode=7),  # type: ignore[arg-type]
    ],
    ids=["nan-threshold", "unknown-mode"],
)
def test_bad_search_shapes_are_invalid_argument(
    gateway: Gateway, request_: gateway_pb2.SearchRequest
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        gateway.stub.Search(request_, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bomb_message_names_the_configured_limit(gateway: Gateway) -> None:
    results = ingest(
        gateway.stub,
        [
            gateway_pb2.IngestRequest(data=decompression_bomb_png(14_000), uri="bomb.png"),
            gateway_pb2.IngestRequest(data=decompression_bomb_png(4_000), uri="mid.png"),
        ],
    )
    for res in results:
        assert res.status == FAILED and res.error_code == "INVALID_ARGUMENT"
        assert f"limit {MAX_PIXELS}" in res.reason, res.reason


# --- property: any path, any mix, every stream ends with one result per item ---

_NAMES = ["good.jpg", "dir", "dir/", "dir/sub/..", "fifo", "fifo_link", "sock", "loop", "loop_a",
          "zero", "out", "outdir/secret.jpg", "dangling", "big.bin", "text.jpg", "../outside",
          "dir/../good.jpg", "missing", "good.jpg/.."]  # fmt: skip
_DEVICES = ["/dev/zero", "/dev/null", "/dev/urandom", "/dev/stdin", "/dev/fd/0", "/dev/tty",
            "/dev", "/", "/proc/self/fd/0"]  # fmt: skip
_CHARS = ["a", "/", ".", "..", "~", "\x00", "\n", "\t", "\x1b", "\x7f", " ", "é", "*", "\\"]


def _paths(root: str) -> st.SearchStrategy[str]:
    text = st.lists(st.sampled_from(_CHARS), max_size=30).map("".join)
    return st.one_of(
        st.sampled_from(_NAMES).map(lambda n: f"{root}/{n}"),
        st.sampled_from(_DEVICES),
        st.sampled_from(["~", "~/", "~root/x.jpg", "~nosuchuser_imgsearch/x", "~nosuch"]),
        text,
        text.map(lambda t: f"{root}/{t}"),
        st.integers(250, 6000).map(lambda n: f"{root}/" + "c" * n),
        st.integers(1, 3000).map(lambda n: f"{root}/" + "d/" * n + "good.jpg"),
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_paths_end_every_stream_normally(gateway: Gateway, data: st.DataObject) -> None:
    paths = data.draw(st.lists(_paths(str(gateway.root)), min_size=1, max_size=6), label="paths")
    at = data.draw(st.integers(0, len(paths)), label="bytes image at")
    reqs = [by_path(p) for p in paths]
    reqs.insert(at, gateway_pb2.IngestRequest(data=encode_image(pattern(300)), uri="prop.jpg"))
    results = ingest(gateway.stub, reqs, timeout=30)
    assert [x.index for x in results] == list(range(len(reqs)))
    assert results[at].status in STORED
    for path, res in zip(paths, results[:at] + results[at + 1 :], strict=True):
        if res.status == FAILED:
            assert res.error_code in PATH_CODES, (path[:80], res)
            if res.error_code == "PERMISSION_DENIED":
                assert res.uri == path[:4096]  # never the resolved target
        else:
            assert res.status in STORED, (path[:80], res)


def test_uris_of_one_content_are_bounded(gateway: Gateway) -> None:
    """A point records at most MAX_PATHS_PER_POINT uris; more are refused, not lost silently."""
    from search_gateway.ingest.store import MAX_PATHS_PER_POINT

    data = encode_image(pattern(400))
    reqs = [
        gateway_pb2.IngestRequest(data=data, uri=f"copy-{i}.jpg")
        for i in range(MAX_PATHS_PER_POINT + 2)
    ]
    results = ingest(gateway.stub, reqs)
    assert [x.index for x in results] == list(range(len(reqs)))
    stored = [x for x in results if x.status in STORED]
    refused = [x for x in results if x.status == FAILED]
    assert len(stored) == MAX_PATHS_PER_POINT and len(refused) == 2
    assert {x.error_code for x in refused} == {"RESOURCE_EXHAUSTED"}
    [point] = gateway.stub.Get(gateway_pb2.GetRequest(ids=[results[0].id]), timeout=30).points
    assert len(point.payload["paths"].string_list_value.values) == MAX_PATHS_PER_POINT
