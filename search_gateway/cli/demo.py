"""`imgsearch demo`: the whole product offline, in one command.

Generates a sample set of synthetic scenes under `sample_images/`, indexes it
with captions in embedded mode (no servers) using the project's own
`offline-tiny` CLIP and BLIP, runs a few queries, prints the hits and writes
`results.html`. Every step is the ordinary CLI, so what it shows is what
`imgsearch index` / `imgsearch query` do on your own photos.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

SIDE_CAR = "imgsearch_meta.jsonl"

QUERIES: list[tuple[str, list[str]]] = [
    ("a red circle", []),
    ("a small blue square on the right", []),
    ("a yellow star", ["camera_id=cam-02"]),
    ("a green triangle", ["ts>=2024-05-02"]),
]

REAL_MODELS_NOTE = """\
This demo used the offline-tiny models shipped in offline_models/ (trained
here on synthetic shapes; they know coloured shapes, not photos). On your
own photos, `imgsearch index ~/Pictures` uses the real defaults and, on a
machine with internet, downloads them once into the Hugging Face cache:
  CLIP ViT-B-32 / laion2b_s34b_b79k  (open_clip, ~605 MB)
  BLIP Salesforce/blip-image-captioning-large  (~1.9 GB, only with --with-captions)"""


def write_samples(folder: Path, count: int, seed: int) -> int:
    """Sample scenes plus a metadata sidecar in the CLI's --meta-jsonl format."""
    from offline_training.scenes import write_sample_folder

    records = write_sample_folder(folder, n=count, seed=seed)
    with open(folder / SIDE_CAR, "w", encoding="utf-8") as f:
        for r in records:
            meta = {
                "camera_id": r["camera_id"],
                "timestamp": r["timestamp"],
                "tags": r["tags"],
                "background": r["background"],
                "true_caption": r["caption"],  # ground truth, to compare with BLIP's
            }
            f.write(json.dumps({"file": r["file_name"], "metadata": meta}) + "\n")
    return len(records)


def run_demo(args: argparse.Namespace) -> int:
    from imgsearch.model_choice import OFFLINE_MODEL_NAME

    cli: Callable[[Sequence[str]], int] = args.run_cli
    folder = Path(args.samples)
    print(f"1/3 generating {args.count} sample scenes in {folder}/ (seed {args.seed})")
    write_samples(folder, args.count, args.seed)
    common = [
        "--data-dir", args.data_dir,
        "--collection", "demo",
        "--model", OFFLINE_MODEL_NAME,
        "--pretrained", "",
        "--caption-model", OFFLINE_MODEL_NAME,
    ]  # fmt: skip
    print(f"2/3 indexing with captions (embedded; CLIP and BLIP: {OFFLINE_MODEL_NAME})")
    code = cli(["index", str(folder), *common, "--with-captions",
                "--meta-jsonl", str(folder / SIDE_CAR)])  # fmt: skip
    if code != 0:
        return code
    print("3/3 searching")
    for n, (text, filters) in enumerate(QUERIES):
        shown = "".join(f" --filter {f!r}" for f in filters)
        print(f"\n> imgsearch query {text!r} -k 5{shown}")
        extra = [arg for f in filters for arg in ("--filter", f)]
        if n == 0:
            extra += ["--html", args.html]
        code = cli(["query", text, "-k", "5", *common, *extra])
        if code != 0:
            return code
    print(f"\nresults gallery for {QUERIES[0][0]!r}: {Path(args.html).resolve()}")
    print(REAL_MODELS_NOTE)
    return 0


def add_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    run_cli: Callable[[Sequence[str]], int],
) -> None:
    """`run_cli` is the CLI's own main: the demo runs ordinary commands
    through it (passed in, so this module does not import the parser back)."""
    p = sub.add_parser("demo", help="generate sample images, index and search them, offline")
    p.add_argument("--samples", default="sample_images", help="where to write the sample set")
    p.add_argument("--count", type=int, default=300, help="number of sample scenes")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--data-dir", default="imgsearch_data", help="embedded index folder")
    p.add_argument("--html", default="results.html", help="gallery of the first query")
    p.set_defaults(func=run_demo, sync=True, run_cli=run_cli)
