"""Debian's Chromium under Playwright, for the page tests.

Playwright's own browser downloads are never used (its CDN is unreachable
here and in CI): scripts/setup_env.sh installs the distribution's chromium and
the tests point Playwright at it. A missing browser fails the tests, since CI
must have one; IMGSEARCH_ALLOW_NO_BROWSER=1 turns that into a skip for a
machine where it cannot be installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    explicit = os.environ.get("IMGSEARCH_CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing(reason: str) -> None:
    if os.environ.get("IMGSEARCH_ALLOW_NO_BROWSER") == "1":
        pytest.skip(f"{reason} (IMGSEARCH_ALLOW_NO_BROWSER=1)")
    pytest.fail(
        f"{reason}: run scripts/setup_env.sh (it installs Debian's chromium), "
        "or set IMGSEARCH_ALLOW_NO_BROWSER=1 to skip the browser tests",
        pytrace=False,
    )


def launch() -> Iterator[Any]:
    """A headless Chromium browser for the module (sync Playwright API)."""
    path = chromium_path()
    if path is None:
        missing("chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    with sync_playwright() as p:
        # --no-sandbox: CI and these machines run as root, where Chromium's
        # sandbox refuses to start; the page under test is our own.
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
