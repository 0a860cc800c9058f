"""Open every page of the built book in headless Chromium and report what a reader would see broken.

Checks, per page of ``_build/html``:

* every internal link resolves: the target file exists and its ``#anchor`` is an id in it
  (read from the HTML files themselves, so this part needs no browser);
* every image loads (``naturalWidth > 0``) and is not one flat colour (its pixels are read back
  through a canvas);
* no page shows a Python traceback, a notebook error output, a docutils error box, or a stderr
  output that mentions an error;
* every file the page requests from the book itself exists (no 404 for a figure, script or style);
* the full page, as a screenshot, is not one flat colour; the screenshots are written to
  ``SCREENSHOTS/<page>.png`` (kept as CI artifacts).

The book is served from a local HTTP server (as a reader's browser would fetch it); requests that
leave the machine (fonts, MathJax from a CDN) are blocked so the check is offline and repeatable.

Usage::

    python tools/check_book.py [_build/html] [--screenshots _build/screenshots]

Exit status 0 when nothing is broken, 1 otherwise (each problem is printed on one line).
Needs the ``playwright`` Python package and a Chromium (``apt-get install chromium``); it never
downloads a browser (no ``playwright install``).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import io
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["CheckConfig", "Problem", "find_chromium", "link_problems", "browser_problems",
           "check_book", "main"]

# Playwright adds --headless and a fresh --user-data-dir itself; these are the rest.
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "chromium",
                       "chromium-browser", "google-chrome")
SKIP_DIRS = ("_static", "_sources", "_images", "_downloads", ".doctrees")
# Text that means a cell failed or Sphinx could not render something.
ERROR_TEXT = ("Traceback (most recent call last)",)
ERROR_SELECTORS = (".output.traceback", ".output.error", "div.system-message", ".problematic")


@dataclass
class CheckConfig:
    """Settings of one check.

    Args:
        html_dir: the built book (``_build/html``).
        screenshots: folder for one full-page PNG per page (created; ``None``: no screenshots).
        chromium: the Chromium executable (default: the first of :data:`CHROMIUM_CANDIDATES`).
        width, height: the browser window in CSS pixels.
        timeout_ms: the longest wait for one page to load.
    """
    html_dir: Path
    screenshots: Path | None = None
    chromium: str | None = None
    width: int = 1200
    height: int = 900
    timeout_ms: int = 30_000


@dataclass(frozen=True)
class Problem:
    """One thing broken on one page: ``kind`` is a short tag (``broken-link``, ``image``, ...)."""
    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def find_chromium(preferred: str | None = None) -> str | None:
    """The path of a Chromium executable, or ``None`` when there is none."""
    for candidate in ((preferred,) if preferred else CHROMIUM_CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html")
                  if not any(part in SKIP_DIRS for part in p.relative_to(html_dir).parts))


class _LinkParser(HTMLParser):
    """Collects ids (anchors) and the URLs a page links to or loads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[tuple[str, str]] = []  # (tag.attribute, url)
        self.redirect: str | None = None       # the target of a <meta http-equiv="refresh">

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            target = (values.get("content") or "").partition("url=")[2].strip()
            if target:
                self.redirect = target
                self.urls.append(("meta.refresh", target))
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(values[key])
        for key in ("href", "src"):
            if values.get(key) and (tag, key) in {("a", "href"), ("img", "src"), ("link", "href"),
                                                  ("script", "src"), ("source", "src")}:
                self.urls.append((f"{tag}.{key}", values[key]))


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _LinkParser:
    parser = _LinkParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def link_problems(html_dir: Path) -> list[Problem]:
    """Internal links, images, scripts and styles whose target file or ``#anchor`` is missing.

    Args:
        html_dir: the built book.
    Returns:
        One :class:`Problem` per broken reference (empty when all resolve).
    """
    html_dir = html_dir.resolve()
    _parse.cache_clear()
    problems: list[Problem] = []
    for page in _pages(html_dir):
        name = page.relative_to(html_dir).as_posix()
        for what, url in _parse(page).urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:")):
                continue  # external: not this book's business offline
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(Problem(name, "broken-link", f"{what} {url!r}: no file {target}"))
                continue
            anchor = unquote(parts.fragment)
            if anchor and what == "a.href" and target.suffix == ".html" \
                    and anchor not in _parse(target).ids:
                problems.append(Problem(name, "broken-anchor",
                                        f"{url!r}: no id {anchor!r} in {target.name}"))
    return problems


# Runs in the page: load every image eagerly, then report the ones that failed to load and the
# ones whose pixels are all one colour (drawn to a canvas, at most 256 pixels on a side).
_IMAGES_JS = """
async () => {
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const out = [];
  for (const img of images) {
    const src = img.getAttribute("src") || "";
    if (!img.complete || img.naturalWidth === 0) { out.push([src, "does not load"]); continue; }
    const scale = Math.min(1, 256 / Math.max(img.naturalWidth, img.naturalHeight));
    const w = Math.max(1, Math.round(img.naturalWidth * scale));
    const h = Math.max(1, Math.round(img.naturalHeight * scale));
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, w, h);
    let data;
    try { data = ctx.getImageData(0, 0, w, h).data; }
    catch (e) { out.push([src, "pixels unreadable: " + e.message]); continue; }
    let flat = true;
    for (let i = 4; i < data.length && flat; i += 4) {
      for (let c = 0; c < 4; c++) {
        if (Math.abs(data[i + c] - data[c]) > 8) { flat = false; break; }
      }
    }
    if (flat) out.push([src, "is one flat colour (" + Array.from(data.slice(0, 4)) + ")"]);
  }
  return {checked: images.length, bad: out};
}
"""

# Runs in the page: visible error outputs (tracebacks, error boxes, stderr that mentions an error).
_ERRORS_JS = """
([texts, selectors]) => {
  const out = [];
  const body = document.body ? document.body.innerText : "";
  for (const t of texts) if (body.includes(t)) out.push("page text contains " + JSON.stringify(t));
  for (const s of selectors)
    for (const el of document.querySelectorAll(s))
      out.push(s + ": " + el.innerText.trim().slice(0, 160).replace(/\\s+/g, " "));
  for (const el of document.querySelectorAll(".output.stderr, .stderr"))
    if (/(Error|Exception)\\b/.test(el.innerText))
      out.push("stderr output: " + el.innerText.trim().slice(0, 160).replace(/\\s+/g, " "));
  return out;
}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib's name)
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the browser hung up early (e.g. it left the page): not a problem of the book


def _serve(html_dir: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _blank(png: bytes) -> bool:
    """Whether a PNG is one flat colour (every channel within 8 levels)."""
    from PIL import Image  # only the browser check needs it

    with Image.open(io.BytesIO(png)) as im:
        extrema = im.convert("RGB").getextrema()   # ((min, max),) per channel
    return max(high - low for low, high in extrema) <= 8


def _check_page(page, url: str, name: str, config: CheckConfig) -> tuple[list[Problem], int]:
    """Load one page and look at it; returns its problems and how many images it has."""
    origin = url[:-len(name)]
    missing: list[str] = []

    def on_response(response) -> None:
        if response.url.startswith(origin) and response.status >= 400:
            missing.append(response.url[len(origin):])

    page.on("response", on_response)
    try:
        page.goto(url, wait_until="load", timeout=config.timeout_ms)
    except Exception as exc:  # a page that does not load at all is itself the problem
        return [Problem(name, "load", str(exc).splitlines()[0])], 0
    finally:
        page.remove_listener("response", on_response)
    images = page.evaluate(_IMAGES_JS)
    problems = [Problem(name, "image", f"{src!r} {why}") for src, why in images["bad"]]
    problems += [Problem(name, "error-output", what) for what in
                 page.evaluate(_ERRORS_JS, [list(ERROR_TEXT), list(ERROR_SELECTORS)])]
    problems += [Problem(name, "missing-file", f"{m} answered 404") for m in missing]
    shot = page.screenshot(full_page=True)
    if config.screenshots:
        (config.screenshots / (name.replace("/", "__")[:-len(".html")] + ".png")).write_bytes(shot)
    if _blank(shot):
        problems.append(Problem(name, "blank-page", "the whole page is one flat colour"))
    return problems, images["checked"]


def browser_problems(config: CheckConfig, counts: dict[str, int] | None = None) -> list[Problem]:
    """Open every page in headless Chromium; report images, error outputs, 404s, blank pages.

    Args:
        config: which book, where screenshots go, which Chromium.
        counts: if given, ``"pages"`` and ``"images"`` are incremented by what was looked at.
    Returns:
        One :class:`Problem` per thing found (empty when every page is clean).
    Raises:
        RuntimeError: when Playwright or Chromium is missing (the message says how to install).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("the browser check needs Playwright's Python package: "
                           "pip install playwright (it drives the system Chromium; "
                           "do not run 'playwright install')") from None
    chromium = find_chromium(config.chromium)
    if chromium is None:
        raise RuntimeError("no Chromium found: apt-get install -y chromium "
                           "(or pass --chromium PATH)")
    html_dir = config.html_dir.resolve()
    if config.screenshots:
        config.screenshots.mkdir(parents=True, exist_ok=True)
    counts = {} if counts is None else counts
    server = _serve(html_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[Problem] = []
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile_dir:
            context = pw.chromium.launch_persistent_context(
                profile_dir, executable_path=chromium, args=list(CHROMIUM_FLAGS),
                headless=True, viewport={"width": config.width, "height": config.height})
            # Offline and repeatable: anything not served by this book's server is blocked.
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(base) else route.abort())
            page = context.new_page()
            for path in _pages(html_dir):
                if _parse(path).redirect:
                    continue  # a redirect page: its target is a page of its own (and a link)
                name = path.relative_to(html_dir).as_posix()
                found, images = _check_page(page, base + name, name, config)
                problems += found
                counts["pages"] = counts.get("pages", 0) + 1
                counts["images"] = counts.get("images", 0) + images
            context.close()
    finally:
        server.shutdown()
        server.server_close()
    return problems


def check_book(config: CheckConfig, counts: dict[str, int] | None = None) -> list[Problem]:
    """Links (without a browser) plus everything :func:`browser_problems` checks (``counts``: see
    there).

    Raises:
        FileNotFoundError: when ``config.html_dir`` holds no built book (run ``make book`` first).
    """
    if not (config.html_dir / "index.html").is_file():
        raise FileNotFoundError(f"no built book at {config.html_dir} (no index.html): "
                                "run 'make book' first")
    return link_problems(config.html_dir) + browser_problems(config, counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", type=Path, default=Path("_build/html"))
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    parser.add_argument("--chromium", default=None, help="path of the Chromium executable")
    args = parser.parse_args(argv)
    counts: dict[str, int] = {}
    try:
        problems = check_book(CheckConfig(args.html_dir, args.screenshots, args.chromium), counts)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print(f"{counts.get('pages', 0)} pages and {counts.get('images', 0)} images checked in the "
          f"browser, {len(problems)} problems; screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
