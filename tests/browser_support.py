"""What the browser tests share: tools/check_book.py loaded once, and why a browser is missing.

``tests/test_browser.py`` (the built book) and ``tests/test_web.py`` (the in-page pieces) both
drive the system Chromium with Playwright; pytest puts this folder on ``sys.path``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if "check_book" not in sys.modules:   # dataclasses look their module up there
    _spec = importlib.util.spec_from_file_location("check_book", ROOT / "tools" / "check_book.py")
    sys.modules["check_book"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["check_book"])
check_book = sys.modules["check_book"]


def browser_missing() -> str | None:
    """Why no browser test can run here (``None``: Playwright and Chromium are both present)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if check_book.find_chromium() is None:
        return "Chromium is not installed (apt-get install -y chromium)"
    return None
