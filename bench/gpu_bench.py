"""GPU bench: model-only, the service under concurrent clients, end-to-end ingest.

Run through bench/gpu.sh (which bounds it to < 8 minutes). On a CUDA device:

1. model only: ViT-B-32 (random weights) in float16 at batch 256 and 1024,
   interleaved with windows of its own GEMMs replayed in float16
   (bench/ceiling.py): images/s best/median and the share of the ceiling.
2. ingest of camera JPEGs (1920x1080 and 4032x3024, made here, written to a
   folder): read files -> nvJPEG decode on the GPU (batched) -> on-device
   pre-processing -> model -> vectors in pinned host memory
   (embedder_service/runtime_gpu.py), against the CPU decode path (PIL with
   draft mode in a thread pool, one per core) feeding the same model; the
   ideal is 1 / (decode + model) per image measured in the same run.
3. the gRPC service on the device (max batch 256) with 64 and 256 concurrent
   single-image clients and 8 clients sending batches of 64 camera JPEGs
   (1920x1080), clients spread over 4 processes: images/s, p50/p99, mean batch
   and the share decoded on the device, with `image_decode=device` (JPEGs
   decoded inside each batch on the GPU: what `auto` picks on CUDA) and then
   `cpu` (PIL in the server's decode threads), A/B in one run.

`--dry-run` runs the same code on the CPU with a tiny model, tiny sizes and
sub-second windows, so the test suite keeps it working without a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.ceiling import GemmCeiling, Windows
from bench.grpc_clients import ClientProcess
from embedder_service.model import ClipEmbedder
from embedder_service.runtime_gpu import DeviceJpegPipeline, triage

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def tiny_model(folder: Path) -> tuple[str, str]:
    """A random tiny open_clip model written as config + checkpoint (no download)."""
    import open_clip

    config = folder / "gpu-bench-tiny.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "gpu-bench-tiny.pt"
    torch.save(open_clip.create_model("gpu-bench-tiny").state_dict(), checkpoint)
    return str(config), str(checkpoint)


def camera_jpeg(seed: int, width: int, height: int) -> bytes:
    """Smooth gradients plus 8x8 noise: compresses like a photo (~1-4 MB at 12 MP)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    noise = rng.integers(-12, 12, (height // 8 + 1, width // 8 + 1, 3))
    arr = np.clip(
        np.asarray(img, np.int16) + noise.repeat(8, 0).repeat(8, 1)[:height, :width], 0, 255
    ).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def windows(fn, seconds: float, per_call: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    """images/s of fn() over one window (at least one call)."""
    fn()
    sync(device)
    n, started = 0, time.perf_counter()
    while True:
        fn()
        n += per_call
        sync(device)
        if time.perf_counter() - started >= seconds:
            return n / (time.perf_counter() - started)


def model_only(model: ClipEmbedder, batches: list[int], seconds: float, rounds: int) -> None:
    device, dtype, size = model._device, model._dtype, model.info.image_size
    print(f"\n== 1. model only ({model.info.model}, {model.info.precision} on {device})")
    print(f"{'batch':>6}{'best':>10}{'median':>10}{'ceil best':>11}{'ceil med':>10}"
          f"{'med/med':>8}{'paired':>8}")  # fmt: skip
    for b in batches:
        pixels = torch.randn(b, 3, size, size, device=device).to(dtype)
        ceiling = GemmCeiling.for_model(model._model.visual, b, size, dtype, device)
        got, paired = Windows(), Windows()
        with torch.inference_mode():
            for _ in range(rounds):
                c = ceiling.sample(seconds)
                r = windows(lambda p=pixels: model._backend.encode_image(p), seconds, b, device)
                got.add(r)
                paired.add(r / c)
        w = ceiling.windows
        print(f"{b:>6}{got.best:>10.0f}{got.median:>10.0f}{w.best:>11.0f}{w.median:>10.0f}"
              f"{got.median / w.median:>8.2f}{paired.median:>8.2f}")  # fmt: skip
        del pixels
    print("(images/s; ceiling = the tower's own GEMMs replayed alone, bench/ceiling.py)")


def ingest(model: ClipEmbedder, args: argparse.Namespace, folder: Path) -> None:
    device = model._device
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.jpeg_sizes.split(",")]
    print(f"\n== 2. ingest of camera JPEGs ({', '.join(args.jpeg_sizes.split(','))}), "
          f"batch {args.ingest_batch}")  # fmt: skip
    workers = os.cpu_count() or 2
    pipe = DeviceJpegPipeline(model)

    def one_size(w: int, h: int) -> None:
        with ThreadPoolExecutor(workers) as pool:
            data = list(pool.map(lambda i: camera_jpeg(i, w, h), range(args.distinct)))
        paths = []
        for i, d in enumerate(data):
            p = folder / f"cam_{w}x{h}_{i}.jpg"
            p.write_bytes(d)
            paths.append(p)
        files = [paths[i % len(paths)] for i in range(args.ingest_images)]
        mb = statistics.mean(len(d) for d in data) / 1e6
        b = args.ingest_batch

        def read(chunk: list[Path], pool: ThreadPoolExecutor) -> list[bytes]:
            return list(pool.map(Path.read_bytes, chunk))

        def run_device() -> tuple[int, int, int]:
            done = fallback = errors = 0
            with ThreadPoolExecutor(workers) as pool:
                nxt = pool.submit(read, files[:b], pool)
                for s in range(0, len(files), b):
                    chunk = nxt.result()
                    if s + b < len(files):  # read ahead while the GPU works
                        nxt = pool.submit(read, files[s + b : s + 2 * b], pool)
                    out = pipe.embed(chunk)
                    done += len(out.good)
                    fallback += out.cpu_fallback
                    errors += len(out.errors)
            return done, fallback, errors

        def run_cpu_decode() -> int:
            done = 0
            with ThreadPoolExecutor(workers) as pool:
                for s in range(0, len(files), b):
                    chunk = read(files[s : s + b], pool)
                    pixels = list(pool.map(model.preprocess_image, chunk))
                    done += len(model.encode_image_batch(pixels))
            return done

        # decode alone (header check + device decode + transform: all but the
        # model) and model alone, for the ideal rate
        one = data[: min(b, len(data))]

        def decode_only() -> torch.Tensor:
            items = [triage(d, model.max_image_pixels) for d in one]
            return pipe.pixels([i for i in items if i is not None])[0]

        with torch.inference_mode():
            dec = windows(decode_only, args.seconds, len(one), device)
            px = decode_only()
            mdl = windows(lambda: model._backend.encode_image(px), args.seconds, len(one), device)
        ideal = 1 / (1 / dec + 1 / mdl)
        rates: dict[str, Windows] = {"device decode": Windows(), "CPU decode": Windows()}
        for _ in range(args.rounds):
            t = time.perf_counter()
            done, fallback, errors = run_device()
            sync(device)
            rates["device decode"].add(done / (time.perf_counter() - t))
            t = time.perf_counter()
            rates["CPU decode"].add(run_cpu_decode() / (time.perf_counter() - t))
        print(f"  {w}x{h} ({mb:.2f} MB each, {len(files)} files a pass, {workers} reader threads): "
              f"decode alone {dec:.0f}/s, model alone {mdl:.0f}/s, ideal 1/(decode+model) "
              f"{ideal:.0f}/s; CPU fallbacks {fallback}, errors {errors}")  # fmt: skip
        for name, r in rates.items():
            print(f"    {name:<14} best {r.best:8.0f}  median {r.median:8.0f} img/s   "
                  f"median/ideal {r.median / ideal:5.2f}")  # fmt: skip

    for w, h in sizes:
        one_size(w, h)


class GpuBusy:
    """Mean GPU utilisation over a window, sampled from nvidia-smi every 0.5 s
    in a thread (None without nvidia-smi, as in the dry run): shows whether the
    GPU idles between batches (then overlapping decode and model would pay)."""

    def __init__(self) -> None:
        import shutil
        import threading

        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._smi = shutil.which("nvidia-smi")
        if self._smi:
            self._thread.start()

    def _sample(self) -> None:
        import subprocess

        assert self._smi is not None
        cmd = [self._smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
                self._samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return

    def stop(self) -> str:
        self._stop.set()
        if self._smi:
            self._thread.join(6)
        return f"{statistics.mean(self._samples):.0f}%" if self._samples else "-"


class ClientPool:
    """Several client processes (one Python process cannot send thousands of
    camera JPEGs a second through gRPC): windows run in all of them at once."""

    def __init__(self, target: str, images: list[bytes], procs: int) -> None:
        self.procs = [ClientProcess(target, images[i::procs] or images) for i in range(procs)]

    async def run(self, clients: int, per_call: int, seconds: float) -> tuple[float, np.ndarray]:
        """(images/s over all processes, every call's latency in ms)."""
        n = len(self.procs)
        share = [clients // n + (1 if i < clients % n else 0) for i in range(n)]
        got = await asyncio.gather(
            *(
                asyncio.to_thread(p.run, c, per_call, seconds)
                for p, c in zip(self.procs, share, strict=True)
                if c
            )
        )
        rate = sum(g.images for g in got) / max(g.seconds for g in got)
        return rate, np.array([ms for g in got for ms in g.latencies_ms])

    def close(self) -> None:
        for p in self.procs:
            p.close()


async def service(args: argparse.Namespace, model_name: str, pretrained: str) -> None:
    from embedder_service.server import start_embedder_server
    from embedder_service.settings import EmbedderSettings

    w, h = (int(v) for v in args.service_jpeg.split("x"))
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        images = list(pool.map(lambda i: camera_jpeg(100 + i, w, h), range(args.distinct)))
    kb = statistics.mean(len(d) for d in images) / 1e3
    print(f"\n== 3. service, {args.service_jpeg} camera-like JPEGs ({kb:.0f} KB), max batch "
          f"{args.service_batch}, clients in {args.client_procs} processes; image_decode "
          f"device (decode in the batch, on the model's device) vs cpu (PIL on threads)")  # fmt: skip
    print(f"{'decode':>8}{'clients':>10}{'img/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'mean batch':>12}{'on device':>11}{'server cores':>13}{'GPU busy':>10}")  # fmt: skip
    for decode in args.service_decode.split(","):
        settings = EmbedderSettings(
            model=model_name, pretrained=pretrained, device=args.device, host="127.0.0.1",
            port=0, metrics_port=-1, max_batch_size=args.service_batch, max_wait_ms=10,
            max_items_per_request=max(512, args.service_batch), image_decode=decode,
            max_request_bytes=256 * 1024 * 1024,
        )  # fmt: skip
        server = await start_embedder_server(settings)
        await server.wait_ready()
        runtime = server.runtime
        assert runtime.image_decode == decode, (runtime.image_decode, decode)
        clients = ClientPool(f"127.0.0.1:{server.port}", images, args.client_procs)
        await clients.run(args.client_procs, 1, min(1.0, args.seconds))  # connect, warm
        for spec in args.service_clients.split(","):
            n, per = (int(v) for v in spec.split("x"))
            i0, b0 = runtime.items_served, runtime.model_batches
            d0, c0 = runtime.decodes.on_device, runtime.decodes.on_cpu
            cpu0, t0, gpu = sum(os.times()[:2]), time.perf_counter(), GpuBusy()
            rate, lat = await clients.run(n, per, args.seconds * 2)
            busy = gpu.stop()
            # The server runs in this process (the clients in their own):
            # how many cores it kept busy, and how busy the GPU was.
            cores = (sum(os.times()[:2]) - cpu0) / (time.perf_counter() - t0)
            mean_batch = (runtime.items_served - i0) / max(1, runtime.model_batches - b0)
            dev, cpu = runtime.decodes.on_device - d0, runtime.decodes.on_cpu - c0
            share = dev / max(1, dev + cpu)
            print(f"{decode:>8}{spec:>10}{rate:>10.0f}{np.percentile(lat, 50):>9.1f}"
                  f"{np.percentile(lat, 99):>9.1f}{mean_batch:>12.1f}{share:>11.0%}"
                  f"{cores:>13.1f}{busy:>10}")  # fmt: skip
        clients.close()
        await server.stop(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, seconds")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batches", default="256,1024")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jpeg-sizes", default="1920x1080,4032x3024")
    ap.add_argument("--distinct", type=int, default=64, help="distinct JPEGs per size")
    ap.add_argument("--ingest-images", type=int, default=4096, help="files per ingest pass")
    ap.add_argument("--ingest-batch", type=int, default=256)
    ap.add_argument("--service-batch", type=int, default=256)
    ap.add_argument("--service-clients", default="64x1,256x1,8x64")
    ap.add_argument("--service-jpeg", default="1920x1080", help="JPEG size the clients send")
    ap.add_argument("--service-decode", default="device,cpu", help="image_decode values to run")
    ap.add_argument("--client-procs", type=int, default=4, help="client processes")
    ap.add_argument("--skip", default="", help="comma list of: model,ingest,service")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="imgsearch-gpu-bench-"))
    if args.dry_run:
        args.device, args.batches, args.seconds, args.rounds = "cpu", "4,8", 0.2, 2
        args.jpeg_sizes, args.distinct, args.ingest_images = "320x240,64x48", 4, 16
        args.ingest_batch, args.service_batch, args.service_clients = 8, 8, "4x1,2x4"
        args.service_jpeg, args.client_procs = "320x240", 2
        model_name, pretrained = tiny_model(tmp)
    else:
        model_name, pretrained = args.model, ""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run (CPU) or on a GPU machine")
    skip = set(filter(None, args.skip.split(",")))
    model = ClipEmbedder(model_name, pretrained, device=args.device)
    model.warmup()
    name = torch.cuda.get_device_name() if model._device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {model.info.runtime} ({model.info.precision}), "
          f"{'DRY RUN (tiny model, CPU)' if args.dry_run else model.info.model}")  # fmt: skip
    if "model" not in skip:
        model_only(model, [int(b) for b in args.batches.split(",")], args.seconds, args.rounds)
    if "ingest" not in skip:
        ingest(model, args, tmp)
    if "service" not in skip:
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        asyncio.run(service(args, model_name, pretrained))
    print("\ndone")


if __name__ == "__main__":
    main()
