"""Screenshot of the search page over the demo's sample set (docs/web-page.png).

    python scripts/web_screenshot.py [--workdir DIR] [--out docs/web-page.png]

Runs `imgsearch demo` in DIR when its index is missing, serves the page over
that embedded index (as `imgsearch ui` does) and has Debian's Chromium, through
Playwright, search and photograph it. Offline, like everything else here.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

from offline_models.registry import OFFLINE_MODEL_NAME
from search_gateway.settings import GatewaySettings


def ensure_demo(workdir: Path) -> None:
    from search_gateway.cli.app import main as cli

    if (workdir / "imgsearch_data").is_dir():
        return
    workdir.mkdir(parents=True, exist_ok=True)
    code = cli(
        [
            "demo",
            "--samples", str(workdir / "sample_images"),
            "--data-dir", str(workdir / "imgsearch_data"),
            "--html", str(workdir / "results.html"),
        ]
    )  # fmt: skip
    if code != 0:
        raise SystemExit(f"imgsearch demo failed ({code})")


class Server:
    """The page over the demo index, on a loop in a background thread."""

    def __init__(self, workdir: Path) -> None:
        self.settings = GatewaySettings(
            data_dir=str(workdir / "imgsearch_data"),
            collection="demo",
            model=OFFLINE_MODEL_NAME,
            pretrained="",
            caption_model=OFFLINE_MODEL_NAME,
            device="cpu",
            metrics_port=-1,
        )
        self.roots = [workdir / "sample_images"]
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.core: Any = None
        self.web: Any = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    async def start(self) -> str:
        from search_gateway.assemble import build_core
        from search_gateway.web.server import start_web_server

        self.core = await build_core(self.settings, read_roots=self.roots, with_captioner=False)
        self.web = await start_web_server(
            self.core, self.settings, port=0, host="127.0.0.1", read_roots=self.roots
        )
        return str(self.web.url)

    async def stop(self) -> None:
        await self.web.stop()
        await self.core.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/imgsearch-web-demo", type=Path)
    parser.add_argument("--out", default="docs/web-page.png", type=Path)
    parser.add_argument("--query", default="a red circle")
    args = parser.parse_args()
    ensure_demo(args.workdir)
    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        raise SystemExit("chromium is not installed (scripts/setup_env.sh installs it)")
    server = Server(args.workdir)
    url = server.run(server.start())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            # bypass_csp: wait_for_function evaluates a string, which the page forbids.
            page = browser.new_page(viewport={"width": 1280, "height": 820}, bypass_csp=True)
            page.goto(f"{url}?q={args.query.replace(' ', '+')}")
            page.wait_for_selector("#results .card")
            page.click("#toggle-filters")
            page.wait_for_function(
                "[...document.querySelectorAll('#results .card img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.run(server.stop())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
