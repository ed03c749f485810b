"""image_decode=device over real gRPC on loopback, forced on the CPU.

torchvision's decode_jpeg runs the same code with libjpeg on a CPU device as
with nvJPEG on CUDA (one batched call, the same fallbacks), so these tests
drive the whole device path of the served embedder here: header checks in
the decode threads, encoded JPEGs in the dynamic batch, decode + transform +
model inside the batch, per-image errors, counters. A second server on the
default CPU path is the reference for the vectors."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from embedder_service.image_decode import wants_device
from embedder_service.model import ClipEmbedder
from embedder_service.runtime_gpu import ClipTransform, EncodedJpeg, triage
from embedder_service.server import EmbedderServer, start_embedder_server
from imgsearch import vectors
from imgsearch.images import ImageDecodeError
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc
from tests.conftest import decompression_bomb_png, encode_image, pattern
from tests.model_service import check_image_batch_errors, rpc_error
from tests.test_embedder_service import settings_for

MAX_PIXELS = 400_000


def photo(seed: int, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Smooth colour fields with some texture: decodes and resizes like a photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.integers(0, 255, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.BICUBIC)
    arr = np.clip(np.asarray(img, np.int16) + rng.integers(-10, 10, (h, w, 3)), 0, 255)
    return Image.fromarray(arr.astype(np.uint8)).convert(mode)


def bogus_huffman_jpeg() -> bytes:
    """A JPEG whose header is fine and whose Huffman table is not: it passes
    the header checks and fails only when decoded (libjpeg, nvJPEG and PIL)."""
    data = bytearray(encode_image(photo(90, (96, 72)), quality=90))
    at = data.index(b"\xff\xc4")
    data[at + 5 : at + 21] = b"\xff" * 16
    return bytes(data)


def mpo() -> bytes:
    """A two-frame MPO (what phones write for a photo plus a depth or gain map):
    PIL names it MPO and decodes the first frame at full size; so does the
    device path (the first JPEG in the stream), without the draft scale."""
    first, second = photo(92, (640, 400)), photo(93, (320, 200))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second], quality=90)
    return buf.getvalue()


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode_image(photo(91, (120, 90)).transpose(Image.Transpose.ROTATE_90), exif=exif)


GOOD_JPEGS = {
    "small": encode_image(photo(1, (96, 72)), quality=92),
    "draft-sized": encode_image(photo(2, (640, 400)), quality=90),  # 1/8 draft on the CPU path
    "portrait": encode_image(photo(3, (150, 260)), quality=85),
    "grey": encode_image(photo(4, (200, 150), "L"), quality=90),
    "progressive": encode_image(photo(5, (256, 192)), quality=88, progressive=True),
    "exif-rotated": rotated_jpeg(),
    "mpo": mpo(),
}
TRUNCATED = encode_image(photo(6, (320, 240)), quality=95)[:3000]
CPU_ROUTED = {  # not for the device decoder: decoded by PIL in the decode threads
    "png": encode_image(pattern(7, (80, 60)), fmt="PNG"),
    "cmyk": encode_image(photo(8, (100, 80), "CMYK"), quality=90),
}
BAD = {
    "junk": b"not an image at all",
    "empty": b"",
    "oversized": encode_image(photo(9, (800, 600)), quality=80),  # 480k px > MAX_PIXELS
    "bomb": decompression_bomb_png(),
    "truncated": TRUNCATED,
    "bogus-huffman": bogus_huffman_jpeg(),  # fails inside the batch
}


def request_mix(k: int) -> list[tuple[str, bytes]]:
    """Request k: a rotating slice of good, CPU-routed and bad images."""
    good = list(GOOD_JPEGS.items())
    cpu = list(CPU_ROUTED.items())
    bad = list(BAD.items())
    mix = [good[k % len(good)], good[(k + 2) % len(good)], cpu[k % len(cpu)]]
    if k % 3 != 2:
        mix.insert(k % 3, bad[(k // 3) % len(bad)])
    return mix


@pytest.fixture
async def servers(
    tiny_clip: tuple[Path, Path],
) -> AsyncIterator[tuple[EmbedderServer, EmbedderServer]]:
    """(device-decode server, default CPU-decode server), same model and limits."""
    common = dict(max_image_pixels=MAX_PIXELS, max_batch_size=16, max_wait_ms=20)
    device = await start_embedder_server(
        settings_for(tiny_clip, image_decode="device", metrics_port=0, **common)
    )
    cpu = await start_embedder_server(settings_for(tiny_clip, **common))
    await asyncio.gather(device.wait_ready(), cpu.wait_ready())
    yield device, cpu
    await asyncio.gather(device.stop(grace_s=1), cpu.stop(grace_s=1))


def stub_for(channel: grpc.aio.Channel) -> embedder_pb2_grpc.EmbedderStub:
    return embedder_pb2_grpc.EmbedderStub(channel)


async def test_mixed_concurrent_requests_match_the_cpu_path(
    servers: tuple[EmbedderServer, EmbedderServer],
) -> None:
    device, cpu = servers
    requests = [request_mix(k) for k in range(24)]
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{device.port}") as dch,
        grpc.aio.insecure_channel(f"127.0.0.1:{cpu.port}") as cch,
    ):
        dstub, cstub = stub_for(dch), stub_for(cch)
        before = await dstub.Info(embedder_pb2.InfoRequest())
        assert before.image_decode == "device"
        assert (await cstub.Info(embedder_pb2.InfoRequest())).image_decode == "cpu"

        def send(stub: embedder_pb2_grpc.EmbedderStub, mix: list[tuple[str, bytes]]):  # type: ignore[no-untyped-def]
            images = [data for _, data in mix]
            return stub.EmbedImages(
                embedder_pb2.EmbedImagesRequest(images=images, partial_results=True)
            )

        got = await asyncio.gather(*(send(dstub, m) for m in requests))
        ref = await asyncio.gather(*(send(cstub, m) for m in requests))
        after = await dstub.Info(embedder_pb2.InfoRequest())

    dim = before.dimension
    bad_seen: set[str] = set()
    for mix, g, r in zip(requests, got, ref, strict=True):
        names = [n for n, _ in mix]
        bad_idx = {i for i, n in enumerate(names) if n in BAD}
        bad_seen |= {names[i] for i in bad_idx}
        # The same images fail, at the same indices, with the CPU path's reasons
        # (the in-batch failure is worded by whichever decoder saw it last).
        assert {e.index for e in g.errors} == bad_idx == {e.index for e in r.errors}, names
        for e in g.errors:
            assert e.reason and g.vectors[e.index] == b""
            if names[e.index] in ("oversized", "bomb"):
                assert "too large" in e.reason
            if names[e.index] == "truncated":
                assert e.reason == next(x.reason for x in r.errors if x.index == e.index)
        for i, n in enumerate(names):
            if i in bad_idx:
                continue
            gv, rv = vectors.decode(g.vectors[i], dim), vectors.decode(r.vectors[i], dim)
            np.testing.assert_allclose(np.linalg.norm(gv), 1.0, atol=1e-3)
            if n in CPU_ROUTED:  # the same CPU transform on both servers
                assert np.abs(gv - rv).max() < 1e-4, n
            else:  # libjpeg + torch resize vs PIL (draft) + PIL resize
                assert float(gv @ rv) >= 0.999, (n, float(gv @ rv))
    assert bad_seen == set(BAD)

    # Every good JPEG was decoded by the device decoder, the PNG/CMYK ones
    # on the CPU; the requests shared model batches.
    n_jpeg = sum(1 for m in requests for n, _ in m if n in GOOD_JPEGS)
    n_cpu = sum(1 for m in requests for n, _ in m if n in CPU_ROUTED)
    assert after.images_device_decoded - before.images_device_decoded == n_jpeg
    # The bogus-Huffman JPEGs were refused by the device decoder and by PIL: no count.
    assert after.images_cpu_decoded - before.images_cpu_decoded == n_cpu
    served = after.items_served - before.items_served
    batches = after.model_batches - before.model_batches
    assert served == n_jpeg + n_cpu + sum(1 for m in requests for n, _ in m if n == "bogus-huffman")
    assert batches < len(requests), f"{len(requests)} requests took {batches} batches"

    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{device.metrics_port}/metrics").read()
    )
    text = body.decode()
    assert f'imgsearch_embedder_image_decodes_total{{path="device"}} {float(n_jpeg)}' in text
    assert f'imgsearch_embedder_image_decodes_total{{path="cpu"}} {float(n_cpu)}' in text


async def test_errors_without_partial_results(
    servers: tuple[EmbedderServer, EmbedderServer],
) -> None:
    device, _ = servers
    req = embedder_pb2.EmbedImagesRequest
    async with grpc.aio.insecure_channel(f"127.0.0.1:{device.port}") as channel:
        stub = stub_for(channel)
        await check_image_batch_errors(lambda images: stub.EmbedImages(req(images=images)))
        good = GOOD_JPEGS["small"]
        # Fails inside the batch: the request's INVALID_ARGUMENT names it, and
        # a concurrent request sharing the batch is answered in full.
        bad_call = stub.EmbedImages(req(images=[good, BAD["bogus-huffman"]]))
        ok_calls = [stub.EmbedImages(req(images=[good])) for _ in range(6)]
        results = await asyncio.gather(bad_call, *ok_calls, return_exceptions=True)
        err = results[0]
        assert isinstance(err, grpc.aio.AioRpcError)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.details() or "").startswith("image[1]: ")
        assert all(isinstance(r, embedder_pb2.EmbedImagesResponse) for r in results[1:])
        code, msg = await rpc_error(stub.EmbedImages(req(images=[good, BAD["oversized"]])))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "image[1]: too large" in msg
        code, msg = await rpc_error(stub.EmbedImages(req(images=[good] * 513)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit is 512" in msg
        # Healthy afterwards.
        reply = await stub.EmbedImages(req(images=[good]))
        assert len(reply.vectors[0]) == reply.dimension * 4


def test_triage_routes_by_header(tiny_clip: tuple[Path, Path]) -> None:
    assert isinstance(triage(GOOD_JPEGS["grey"], MAX_PIXELS), EncodedJpeg)
    assert isinstance(triage(BAD["bogus-huffman"], MAX_PIXELS), EncodedJpeg)
    mpo_item = triage(GOOD_JPEGS["mpo"], MAX_PIXELS)
    assert mpo_item is not None and not mpo_item.draft and mpo_item.width == 640
    jpeg = triage(GOOD_JPEGS["portrait"], MAX_PIXELS)
    assert jpeg is not None and (jpeg.width, jpeg.height) == (150, 260)
    for data in (*CPU_ROUTED.values(), TRUNCATED):
        assert triage(data, MAX_PIXELS) is None
    for name in ("junk", "empty", "oversized", "bomb"):
        with pytest.raises(ImageDecodeError):
            triage(BAD[name], MAX_PIXELS)


def test_image_decode_choice(tiny_clip: tuple[Path, Path]) -> None:
    """auto = device only on CUDA; a transform the device code does not know
    is refused (the server then stays on, or fails to, the CPU path)."""
    config, checkpoint = tiny_clip
    model = ClipEmbedder(str(config), str(checkpoint), device="cpu")
    model.load()
    assert not wants_device("auto", model) and not wants_device("cpu", model)
    assert wants_device("device", model)
    with pytest.raises(ValueError):
        wants_device("gpu", model)
    from torchvision import transforms as T

    with pytest.raises(ValueError):
        ClipTransform.of(T.Compose([T.Resize((224, 224)), T.ToTensor()]))


def test_device_inputs_match_the_cpu_transform(tiny_clip: tuple[Path, Path]) -> None:
    """The model inputs themselves, in 8-bit levels: a tiny random model's
    vectors hardly move when they differ (cosine 0.998 even when the draft
    scale is wrong), the inputs do (mean 2.4-14 levels off then)."""
    import torch

    from embedder_service.runtime_gpu import DeviceJpegPipeline

    config, checkpoint = tiny_clip
    model = ClipEmbedder(str(config), str(checkpoint), device="cpu")
    pipe = DeviceJpegPipeline(model)
    std = torch.tensor(pipe.transform.std).view(3, 1, 1)
    for name, data in GOOD_JPEGS.items():
        jpeg = triage(data, MAX_PIXELS)
        assert jpeg is not None
        with torch.inference_mode():
            pixels, errors, on_device, _ = pipe.pixels([jpeg])
        assert not errors and on_device == 1
        levels = ((pixels[0].float() - model.preprocess_image(data)) * std * 255).abs()
        assert float(levels.mean()) < 1.5 and float(levels.max()) < 16, (name, levels.mean())


async def test_chunks_bound_the_decoded_pixels(tiny_clip: tuple[Path, Path]) -> None:
    """A batch decodes in chunks of max_chunk_pixels; vectors are the same."""
    from embedder_service.runtime_gpu import DeviceJpegPipeline

    config, checkpoint = tiny_clip
    model = ClipEmbedder(str(config), str(checkpoint), device="cpu")
    images = list(GOOD_JPEGS.values())
    whole = DeviceJpegPipeline(model).embed(images)
    pipe = DeviceJpegPipeline(model, max_chunk_pixels=100_000)
    jpegs = [(i, triage(d, MAX_PIXELS)) for i, d in enumerate(images)]
    chunks = pipe._chunks([(i, j) for i, j in jpegs if j is not None])
    assert len(chunks) > 1 and all(
        len(c) == 1 or sum(j.width * j.height for _, j in c) <= 100_000 for c in chunks
    )
    chunked = pipe.embed(images)
    assert chunked.good == whole.good == list(range(len(images)))
    assert np.abs(chunked.vectors - whole.vectors).max() < 1e-5


def test_truncated_header_image_reads_like_pil() -> None:
    """The test data itself: the truncated JPEG still has a readable header."""
    with Image.open(io.BytesIO(TRUNCATED)) as img:
        assert img.size == (320, 240)


class _SquashEmbedder(ClipEmbedder):
    """A model whose transform squashes to a square (open_clip's resize_mode
    "squash"): the device path does not copy that, so it must not start."""

    def _load(self) -> None:
        super()._load()
        from torchvision import transforms as T

        assert self._info is not None
        side = self._info.image_size
        bicubic = T.InterpolationMode.BICUBIC
        self._preprocess = T.Compose(
            [
                T.Resize((side, side), interpolation=bicubic),
                T.ToTensor(),
                T.Normalize((0.5,) * 3, (0.5,) * 3),
            ]
        )


async def test_device_path_that_cannot_start(
    tiny_clip: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explicit `device` keeps the server NOT_SERVING (readiness keeps the pod
    out); `auto`, were it to choose the device (as on CUDA), logs and serves
    on the CPU path instead."""
    from tests.model_service import check_health

    settings = settings_for(tiny_clip, image_decode="device")
    srv = await start_embedder_server(
        settings, model=_SquashEmbedder(settings.model, settings.pretrained)
    )
    try:
        with pytest.raises(ValueError, match="unsupported resize"):
            await srv.wait_ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            await check_health(channel, "imgsearch.v1.Embedder", serving=False)
    finally:
        await srv.stop(grace_s=1)

    import embedder_service.runtime as runtime_module

    monkeypatch.setattr(runtime_module, "wants_device", lambda setting, model: setting != "cpu")
    settings = settings_for(tiny_clip, image_decode="auto")
    srv = await start_embedder_server(
        settings, model=_SquashEmbedder(settings.model, settings.pretrained)
    )
    try:
        await srv.wait_ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            await check_health(channel, "imgsearch.v1.Embedder", serving=True)
            stub = stub_for(channel)
            assert (await stub.Info(embedder_pb2.InfoRequest())).image_decode == "cpu"
            reply = await stub.EmbedImages(
                embedder_pb2.EmbedImagesRequest(images=[GOOD_JPEGS["small"]])
            )
            assert len(reply.vectors[0]) == reply.dimension * 4
    finally:
        await srv.stop(grace_s=1)
