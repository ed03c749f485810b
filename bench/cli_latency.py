"""How long each `imgsearch` command takes as a person runs it, cold and warm,
and its peak memory.

Builds a sample index (offline-tiny models, synthetic scenes), then runs each
command as a real subprocess `--runs` times:
* cold: a fresh process, no daemon (imports, model load if the command
  needs one, store open, teardown);
* warm: through the warm daemon (`--warm`; the daemon is started once before
  timing and already has CLIP loaded and the index open).
Prints the median and the minimum wall time, the ratio cold/warm measured in
this run, the peak RSS of the client process (cold: the whole command;
warm: only the thin client, the daemon's own peak is printed once), and the
import share of a cold run: the seconds its imports took (`python -X
importtime`, top-level cumulative times summed) over that run's wall time
(importtime's own bookkeeping inflates both a little).

    OMP_NUM_THREADS=1 python bench/cli_latency.py --images 300 --runs 5

On a shared machine wall times swing with the load: the script prints the
1-minute load average before and after, and the minimum of the runs is the
figure least disturbed by other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env.update(
        IMGSEARCH_MODEL="offline-tiny",
        IMGSEARCH_PRETRAINED="",
        IMGSEARCH_CAPTION_MODEL="offline-tiny",
        IMGSEARCH_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def run(data_dir: Path, *args: str) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the child in MiB, stdout) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "search_gateway.cli", *args],
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"imgsearch {' '.join(args)} failed: {proc.stderr}")
    # ru_maxrss of children is the max over all children so far: a rise tells
    # this child's peak; otherwise this child stayed below an earlier one.
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, (after if after > before else -1) // 1024, proc.stdout


def peak_rss_mib(*args: str, data_dir: Path) -> int:
    """Peak RSS of one command, measured alone with /usr/bin/time -f %M if present."""
    timer = Path("/usr/bin/time")
    if not timer.exists():
        return -1
    proc = subprocess.run(
        [str(timer), "-f", "%M", sys.executable, "-m", "search_gateway.cli", *args],
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return int(proc.stderr.strip().splitlines()[-1]) // 1024


def import_share(*args: str, data_dir: Path) -> tuple[float, float]:
    """(seconds spent importing, wall seconds) of one cold run under -X importtime."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "search_gateway.cli", *args],
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    micros = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not name[1:].startswith(" "):  # top level: one space after the bar
            micros += int(cumulative)
    return micros / 1e6, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", help="use/keep this folder instead of a temporary one")
    args = parser.parse_args()

    folder = Path(args.keep or tempfile.mkdtemp(prefix="cli_latency_"))
    photos, data = folder / "photos", folder / "data"
    if not photos.exists():
        sys.path.insert(0, str(ROOT))
        from search_gateway.cli.demo import write_samples

        write_samples(photos, args.images, seed=11)
    if not (data / "edge").exists():
        wall, _, _ = run(data, "index", str(photos), "--no-progress")
        print(f"indexed {args.images} images in {wall:.1f} s (setup, not timed below)")
    _, _, out = run(data, "query", "x", "-k", "1", "--json")
    point_id = json.loads(out)["hits"][0]["id"]

    commands = {
        "stats": ["stats"],
        "get": ["get", point_id[:8]],
        "similar --id": ["similar", "--id", point_id[:8], "-k", "10"],
        "delete --dry-run": ["delete", "--filter", "camera_id=cam-01", "--dry-run"],
        "query (text)": ["query", "a red circle on the left", "-k", "10"],
        "query + filter": ["query", "a red circle", "-k", "10", "--filter", "ts>=2024-05-02"],
    }
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}; cpus: {os.cpu_count()}")
    cold: dict[str, list[float]] = {}
    for name, argv in commands.items():
        cold[name] = [run(data, *argv)[0] for _ in range(args.runs)]
    cold_peak = {name: peak_rss_mib(*argv, data_dir=data) for name, argv in commands.items()}
    imports = {name: import_share(*argv, data_dir=data) for name, argv in commands.items()}

    run(data, "--warm", "--warm-idle", "120", "stats")  # starts the daemon
    run(data, "query", "warm up", "-k", "1")  # the daemon loads CLIP once
    warm: dict[str, list[float]] = {}
    warm_peak: dict[str, int] = {}
    try:
        for name, argv in commands.items():
            warm[name] = [run(data, *argv)[0] for _ in range(args.runs)]
            warm_peak[name] = peak_rss_mib(*argv, data_dir=data)
        daemon_pid = run(data, "daemon", "status")[2].split()[-1]
        status = Path(f"/proc/{daemon_pid}/status")
        daemon_hwm = next(
            (ln.split()[1] for ln in status.read_text().splitlines() if ln.startswith("VmHWM")),
            "?",
        )
    finally:
        run(data, "daemon", "stop")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")

    print(f"\n{args.images} images, {args.runs} runs each (seconds: median / min)")
    header = f"{'command':<18} {'cold':>13} {'warm':>13} {'cold/warm':>9} {'peak MiB cold':>13}"
    print(header + f" {'peak MiB warm client':>20} {'cold imports s (share)':>22}")
    for name in commands:
        c, w = cold[name], warm[name]
        ratio = statistics.median(c) / statistics.median(w)
        imported, wall = imports[name]
        print(
            f"{name:<18} {statistics.median(c):>6.2f} /{min(c):>5.2f} "
            f"{statistics.median(w):>6.2f} /{min(w):>5.2f} {ratio:>9.1f} "
            f"{cold_peak[name]:>13} {warm_peak[name]:>20} "
            f"{imported:>14.2f} ({imported / wall:>4.0%})"
        )
    print(f"daemon peak RSS: {int(daemon_hwm) // 1024 if daemon_hwm != '?' else '?'} MiB")


if __name__ == "__main__":
    main()
