"""Debian's chromium, as the web view's browser tests and bench/ui.py start it through
Playwright: where it is, and the flags of /work/.library/env/machines/python.md (no sandbox as
root, no GPU, no network of its own, nothing downloaded: Playwright never fetches a browser)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
