"""Every kind of bad input gets a documented status and leaves nothing
half-written; the gateway stays up. Through real gRPC on loopback, against a
gateway with in-process tiny models."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import decompression_bomb_png, encode_image, pattern
from tests.gateway_harness import Models, gateway_settings
from tests.threaded_server import ServerThread

OK, INVALID = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
ADDED = gateway_pb2.INGEST_STATUS_ADDED
FAILED = gateway_pb2.INGEST_STATUS_FAILED
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[gateway_pb2_grpc.SearchGatewayStub]:
    from search_gateway.server import start_gateway_server
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    root = tmp_path_factory.mktemp("bad_input")
    config, ckpt = build_tiny_clip(root / "clip", name="tiny-clip-bad-input")
    models = Models(config, ckpt, build_tiny_blip(root / "blip"))
    settings_ = gateway_settings(models, root / "data", max_request_bytes=16 * 1024 * 1024)
    with ServerThread(lambda: start_gateway_server(settings_)) as thread:
        opts = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(f"127.0.0.1:{thread.server.port}", options=opts) as ch:
            stub = gateway_pb2_grpc.SearchGatewayStub(ch)
            stub.raw_channel = ch  # type: ignore[attr-defined]  # for hand-made bytes
            yield stub


def ingest(stub: gateway_pb2_grpc.SearchGatewayStub, *reqs: gateway_pb2.IngestRequest) -> list:
    return list(stub.Ingest(iter(reqs), timeout=60))


def status(call, *args, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call(*args, timeout=30, **kwargs)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return OK


def img(image: Image.Image, fmt: str = "PNG", **kw: object) -> gateway_pb2.IngestRequest:
    return gateway_pb2.IngestRequest(data=encode_image(image, fmt, **kw), uri=f"test-{id(image)}")


def test_bad_images_fail_alone_and_odd_images_work(
    gateway: gateway_pb2_grpc.SearchGatewayStub,
) -> None:
    truncated = encode_image(pattern(9, (640, 480)), "JPEG", quality=95)
    gif = io.BytesIO()
    frames = [pattern(20), pattern(21)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    sixteen = Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16))
    cases = [
        ("zero bytes", gateway_pb2.IngestRequest(data=b"", uri="empty.jpg"), FAILED, "empty"),
        ("text as jpg", gateway_pb2.IngestRequest(data=b"hello world", uri="t.jpg"), FAILED, "not a recognised"),
        ("truncated", gateway_pb2.IngestRequest(data=truncated[:2000], uri="tr.jpg"), FAILED, "truncated"),
        ("bomb", gateway_pb2.IngestRequest(data=decompression_bomb_png(), uri="b.png"), FAILED, "too large"),
        ("16-bit", img(sixteen), ADDED, ""),
        ("cmyk", img(pattern(22).convert("CMYK"), "JPEG"), ADDED, ""),
        ("palette", img(pattern(23).convert("P")), ADDED, ""),
        ("alpha", img(pattern(24).convert("RGBA")), ADDED, ""),
        ("gif", gateway_pb2.IngestRequest(data=gif.getvalue(), uri="anim.gif"), ADDED, ""),
        ("1x1", img(Image.new("RGB", (1, 1), "red")), ADDED, ""),
        ("no source", gateway_pb2.IngestRequest(uri="nothing"), FAILED, "neither bytes nor a path"),
        ("path refused", gateway_pb2.IngestRequest(path="/etc/passwd"), FAILED, "does not read files"),
        ("huge metadata", gateway_pb2.IngestRequest(
            data=encode_image(pattern(25)), uri="m",
            metadata={"note": common_pb2.Value(string_value="x" * 20_000)}), FAILED, "limit"),
        ("reserved key", gateway_pb2.IngestRequest(
            data=encode_image(pattern(26)), uri="r",
            metadata={"sha256": common_pb2.Value(string_value="x")}), FAILED, "reserved"),
    ]  # fmt: skip
    results = ingest(gateway, *(req for _, req, _, _ in cases))
    assert len(results) == len(cases)
    for (name, _, expected, reason), r in zip(cases, results, strict=True):
        assert r.status == expected, (name, r)
        assert reason.lower() in r.reason.lower(), (name, r.reason)
        if expected == FAILED:
            assert r.error_code in ("INVALID_ARGUMENT", "PERMISSION_DENIED"), (name, r)
    # Nothing half-written: exactly the good images are stored.
    added = [r.id for r in results if r.status == ADDED]
    got = gateway.Get(gateway_pb2.GetRequest(ids=added), timeout=30)
    assert len(got.points) == len(added) and not got.missing

    # The GIF was embedded from its first frame.
    first = encode_image(frames[0].convert("RGB"))
    hits = gateway.Search(gateway_pb2.SearchRequest(image=first, k=1), timeout=30).hits
    assert hits[0].id == results[8].id and hits[0].score > 0.99


def test_exif_rotation_is_honoured(gateway: gateway_pb2_grpc.SearchGatewayStub) -> None:
    upright = pattern(30, (48, 64))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera writes it
    exif = Image.Exif()
    exif[0x0112] = 6
    [r] = ingest(gateway, gateway_pb2.IngestRequest(
        data=encode_image(stored, "JPEG", exif=exif.tobytes(), quality=98), uri="exif.jpg"))  # fmt: skip
    hits = gateway.Search(
        gateway_pb2.SearchRequest(image=encode_image(upright, "PNG"), k=1), timeout=30
    ).hits
    assert hits[0].id == r.id and hits[0].score > 0.98


def test_invalid_utf8_is_invalid_argument(gateway: gateway_pb2_grpc.SearchGatewayStub) -> None:
    # Field 1 (text, a string) holding bytes that are not UTF-8.
    raw = b"\x0a\x03\xff\xfe\xfd" + gateway_pb2.SearchRequest(k=3).SerializeToString()
    call = gateway.raw_channel.unary_unary(  # type: ignore[attr-defined]
        "/imgsearch.v1.SearchGateway/Search",
        request_serializer=None,
        response_deserializer=gateway_pb2.SearchResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as err:
        call(raw, timeout=10)
    assert err.value.code() == INVALID and "not a valid message" in err.value.details()
    ingest_call = gateway.raw_channel.stream_stream(  # type: ignore[attr-defined]
        "/imgsearch.v1.SearchGateway/Ingest",
        request_serializer=None,
        response_deserializer=gateway_pb2.IngestResult.FromString,
    )
    bad_uri = b"\x1a\x02\xc3\x28"  # field 3 (uri), invalid UTF-8
    with pytest.raises(grpc.RpcError) as err:
        list(ingest_call(iter([bad_uri]), timeout=10))
    assert err.value.code() == INVALID


@pytest.mark.parametrize(
    ("request_", "code", "needle"),
    [
        (gateway_pb2.SearchRequest(k=5), INVALID, "no query"),
        (gateway_pb2.SearchRequest(text="   ", k=5), INVALID, "empty"),
        (gateway_pb2.SearchRequest(text="x" * 10_000_000, k=5), INVALID, "limit"),
        (gateway_pb2.SearchRequest(text="x"), INVALID, "k must be"),
        (gateway_pb2.SearchRequest(text="x", k=2**32 - 1), INVALID, "k must be"),
        (gateway_pb2.SearchRequest(text="x", k=5, offset=10**9), INVALID, "offset"),
        (gateway_pb2.SearchRequest(image=b"nope", k=5), INVALID, "query image"),
        (gateway_pb2.SearchRequest(point_id="not-a-uuid", k=5), INVALID, ""),
        (gateway_pb2.SearchRequest(point_id="00000000-0000-0000-0000-000000000001", k=5),
         grpc.StatusCode.NOT_FOUND, "no point"),
        (gateway_pb2.SearchRequest(text="x", k=5, filter=gateway_pb2.Filter(
            must=[gateway_pb2.Condition(range=gateway_pb2.Range(key="width"))])), INVALID, "no bound"),
        (gateway_pb2.SearchRequest(text="x", k=5, filter=gateway_pb2.Filter(
            must=[gateway_pb2.Condition(match=gateway_pb2.Match(key="", keyword="a"))])), INVALID, "key"),
        (gateway_pb2.SearchRequest(text="x", k=5, filter=gateway_pb2.Filter(
            must=[gateway_pb2.Condition(geo_radius=gateway_pb2.GeoRadius(
                key="location", center=common_pb2.GeoPoint(lat=123, lon=0), radius_m=5))])),
         INVALID, "lat"),
        (gateway_pb2.SearchRequest(text="x", k=5, filter=gateway_pb2.Filter(
            must=[gateway_pb2.Condition()])), INVALID, ""),
        (gateway_pb2.SearchRequest(image=b"x", k=5, mode=gateway_pb2.SEARCH_MODE_CAPTION),
         INVALID, "text query"),
    ],
)  # fmt: skip
def test_bad_searches(gateway, request_, code, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        gateway.Search(request_, timeout=30)
    assert err.value.code() == code
    assert needle.lower() in (err.value.details() or "").lower()


def test_odd_but_valid_searches(gateway: gateway_pb2_grpc.SearchGatewayStub) -> None:
    # Beyond the end: no hits. Unknown field: matches nothing (documented).
    far = gateway.Search(gateway_pb2.SearchRequest(text="x", k=5, offset=90_000), timeout=30)
    assert list(far.hits) == []
    unknown = gateway_pb2.Filter(
        must=[gateway_pb2.Condition(match=gateway_pb2.Match(key="no_such_field", keyword="a"))]
    )
    reply = gateway.Search(gateway_pb2.SearchRequest(text="x", k=5, filter=unknown), timeout=30)
    assert list(reply.hits) == []
    got = gateway.Get(gateway_pb2.GetRequest(ids=["00000000-0000-0000-0000-000000000002"]))
    assert list(got.missing) == ["00000000-0000-0000-0000-000000000002"]
    assert status(gateway.Get, gateway_pb2.GetRequest()) == INVALID
    assert status(gateway.Delete, gateway_pb2.DeleteRequest()) == INVALID


_conditions = st.one_of(
    st.builds(lambda k, v: gateway_pb2.Condition(match=gateway_pb2.Match(key=k, keyword=v)),
              st.text(max_size=12), st.text(max_size=12)),
    st.builds(lambda k, lo: gateway_pb2.Condition(range=gateway_pb2.Range(key=k, gte=lo)),
              st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda k, a, b, r: gateway_pb2.Condition(geo_radius=gateway_pb2.GeoRadius(
        key=k, center=common_pb2.GeoPoint(lat=a, lon=b), radius_m=r)),
        st.text(max_size=8), st.floats(-200, 200), st.floats(-400, 400), st.floats(-10, 1e7)),
    st.builds(lambda t: gateway_pb2.Condition(text=gateway_pb2.TextMatch(text=t)), st.text(max_size=20)),
)  # fmt: skip
_searches = st.builds(
    lambda q, k, off, thr, must, mode: gateway_pb2.SearchRequest(
        text=q, k=k, offset=off, filter=gateway_pb2.Filter(must=must), mode=mode,
        **({"score_threshold": thr} if thr is not None else {})),
    st.text(max_size=60), st.integers(0, 2000), st.integers(0, 200_000),
    st.one_of(st.none(), st.floats(-2, 2)), st.lists(_conditions, max_size=3),
    st.sampled_from([0, 1, 2, 3]),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(search=_searches)
def test_fuzz_search_answers_only_documented_codes(gateway, search) -> None:  # type: ignore[no-untyped-def]
    assert status(gateway.Search, search) in DOCUMENTED


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(blobs=st.lists(st.binary(max_size=2048), min_size=1, max_size=4), with_png=st.booleans())
def test_fuzz_ingest_random_bytes(gateway, blobs, with_png) -> None:  # type: ignore[no-untyped-def]
    reqs = [gateway_pb2.IngestRequest(data=b, uri=f"fuzz{i}") for i, b in enumerate(blobs)]
    if with_png:
        reqs.append(gateway_pb2.IngestRequest(data=encode_image(pattern(len(blobs))), uri="ok"))
    results = ingest(gateway, *reqs)
    assert len(results) == len(reqs)
    for r in results:
        assert r.status != gateway_pb2.INGEST_STATUS_UNSPECIFIED
        if r.status == FAILED:
            assert r.error_code == "INVALID_ARGUMENT"
    # Still up and answering.
    assert gateway.Stats(gateway_pb2.StatsRequest(), timeout=30).count >= 0


def test_gateway_survives_all_of_the_above(
    gateway: gateway_pb2_grpc.SearchGatewayStub, tmp_path: Path
) -> None:
    # Its own points (already present when the tests above ran first), so it
    # also passes when run alone.
    ingest(gateway, *(img(pattern(i)) for i in (41, 42, 43)))
    reply = gateway.Search(gateway_pb2.SearchRequest(text="a red circle", k=3), timeout=30)
    assert len(reply.hits) == 3
