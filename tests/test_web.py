"""zfkit.web: the in-page pieces in headless Chromium (Playwright, as tests/test_browser.py drives
it), and the HTML and data they are made of.

The browser tests write pages with ``zfkit.web.standalone_page`` into ``tmp_path`` and open them
from disk with every network request blocked, so they also prove the pieces work offline. Without
Playwright or Chromium they are skipped here, and fail in CI (``CI`` set).
"""
from __future__ import annotations

import base64
import json
import os
import random
import re
import tempfile
import tomllib
from pathlib import Path

import pytest
import torch

from zfkit import web
from zfkit.calculator import explain, explain_layer, window_positions
from zfkit.models import MODEL_NAMES, build_model
from zfkit.probe import receptive_box
from zfkit.shapes import conv_output_size, layer_table

ROOT = Path(__file__).resolve().parents[1]
from browser_support import browser_missing as _browser_missing, check_book


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module; yields ``open(path, width, js)`` -> a new page."""
    why = _browser_missing()
    if why and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {why}")
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch(executable_path=check_book.find_chromium(), headless=True,
                                     args=list(check_book.CHROMIUM_FLAGS))
        errors: list[str] = []

        def open_page(path: Path, width: int = 1280, js: bool = True):
            context = browser.new_context(viewport={"width": width, "height": 900},
                                          java_script_enabled=js)
            context.route("**/*", lambda route: route.continue_()   # offline: disk only
                          if route.request.url.startswith("file:") else route.abort())
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri())
            return page

        yield open_page
        browser.close()
        assert not errors, f"JavaScript errors: {errors}"


def _write(tmp_path: Path, name: str, *pieces, **kwargs) -> Path:
    path = tmp_path / name
    path.write_text(web.standalone_page(*pieces, **kwargs), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the calculator's arithmetic

BAD_VALUES = (-1, -7, 0, 2.5, 0.1, 1e-07, None, True, False, "3", "")


def _settings(n: int = 1500) -> list[list[object]]:
    """Random settings of conv_output_size, about a quarter of them invalid, plus edge cases."""
    rng = random.Random(11)
    edges = [[0, 1, 1, 0, 1, False], [0, 1, 1, 0, 1, True], [1, 1, 1, 0, 1, False],
             [8, 3, 2, 0, 1, True], [5, 2, 2, 1, 1, True], [1, 1, 1, 2, 1, True],
             [2, 3, 2, 0, 1, True], [8, 11, 1, 0, 1, False], [8, 8, 1, 0, 1, True],
             [7, 3, 1, 0, 4, False], [2 ** 40, 3, 7, 5, 2, False], [2 ** 50, 2 ** 20, 1, 0, 1, True],
             [10, 1, 3, 0, 1, True], [0, 1, 1, 1, 1, True], [227, 11, 4, 2, 1, False]]
    out = []
    for _ in range(n):
        args = [rng.randint(0, 60), rng.randint(1, 12), rng.randint(1, 6), rng.randint(0, 6),
                rng.randint(1, 4), rng.random() < 0.5]
        if rng.random() < 0.15:
            args[rng.randrange(6)] = rng.choice(BAD_VALUES + (1, 0))
        out.append(args)
    return edges + out


def _python(args: list[object]) -> dict[str, object]:
    try:
        return {"ok": conv_output_size(*args)}
    except ValueError as exc:
        return {"err": str(exc)}


_RUN_ALL = """(settings) => settings.map(a => {
  try { return {ok: window.zfkit.convOutputSize(...a)}; }
  catch (e) { return e instanceof Error ? {err: e.message} : {thrown: String(e)}; }
})"""


def test_conv_output_size_in_the_browser_matches_python(tmp_path, chromium):
    settings = _settings()
    expected = [_python(a) for a in settings]
    invalid = sum("err" in e for e in expected)
    assert len(settings) >= 1000 and 200 <= invalid <= len(settings) - 600, invalid
    page = chromium(_write(tmp_path, "calc.html", web.calculator_html()))
    got = page.evaluate(_RUN_ALL, settings)
    wrong = [(a, e, g) for a, e, g in zip(settings, expected, got) if e != g]
    assert not wrong, f"{len(wrong)} of {len(settings)} differ, e.g. {wrong[:5]}"
    # the defaults are conv_output_size's
    assert page.evaluate("window.zfkit.convOutputSize(9, 3)") == conv_output_size(9, 3)


def test_window_positions_in_the_browser_match_python(tmp_path, chromium):
    valid = [a for a in _settings(600) if "ok" in _python(a) and a[0] < 1000]
    page = chromium(_write(tmp_path, "calc.html", web.calculator_html()))
    got = page.evaluate("(s) => s.map(a => window.zfkit.windowPositions(...a))", valid)
    for args, g in zip(valid, got):
        w = window_positions(*args)
        starts = tuple(g["first"] + i * g["stride"] for i in range(g["out"]))
        assert (g["out"], g["span"], starts, g["dropped"]) == \
            (w.out, w.span, w.starts, w.dropped), args


def _calc_state(page) -> dict[str, str]:
    return page.evaluate("""() => { const r = n => document.querySelector(`[data-role=${n}]`);
      return {result: r("result").textContent, formula: r("formula").textContent,
              rule: r("rule").textContent,
              windows: document.querySelectorAll("[data-window]:not([data-window=dropped])").length,
              dropped: document.querySelectorAll("[data-window=dropped]").length}; }""")


def _set(page, settings: dict[str, object]) -> None:
    for role, value in settings.items():
        box = page.locator(f"[data-role={role}]")
        if isinstance(value, bool):
            box.set_checked(value)
        else:
            box.fill(str(value))


def test_calculator_draws_states_and_explains(tmp_path, chromium):
    page = chromium(_write(tmp_path, "calc.html", web.calculator_html()))
    state = _calc_state(page)                     # opens on 8, 3, stride 2: floor drops one
    assert state["result"] == f"output size {conv_output_size(8, 3, 2)}"
    assert state["formula"].endswith(f"= {conv_output_size(8, 3, 2)}")
    assert (state["windows"], state["dropped"]) == (3, 1)
    _set(page, {"ceil": True})                    # ceil mode keeps it: the rule says so
    state = _calc_state(page)
    assert state["result"] == "output size 4" and "one more window is kept" in state["rule"]
    assert (state["windows"], state["dropped"]) == (4, 0)
    _set(page, {"size": 5, "kernel": 2, "stride": 2, "padding": 1})   # PyTorch's rule drops it
    state = _calc_state(page)
    assert state["result"] == f"output size {conv_output_size(5, 2, 2, 1, 1, True)}"
    assert "must start inside the input or the left padding" in state["rule"]
    tail = ", minus the window that would start in the right padding = 3"
    assert state["formula"].endswith(tail) and explain(5, 2, 2, 1, ceil_mode=True).endswith(tail)
    for settings, args in [({"kernel": 11, "ceil": False}, (5, 11, 2, 1)),
                           ({"kernel": "2.5"}, (5, 2.5, 2, 1)),
                           ({"kernel": 3, "dilation": 0}, (5, 3, 2, 1, 0))]:
        _set(page, settings)
        with pytest.raises(ValueError) as exc:
            conv_output_size(*args)
        assert _calc_state(page)["result"] == f"invalid settings: {exc.value}"
        assert not page.locator(".zfkit-strip").is_visible()
    _set(page, {"dilation": 1, "size": 200})      # many windows: first ones, a gap, the last
    state = _calc_state(page)
    assert state["result"] == f"output size {conv_output_size(200, 3, 2, 1)}"
    assert state["windows"] == 5


# ---------------------------------------------------------------- clickable layer tables

@pytest.mark.parametrize("name", ["alexnet", "zfnet"])
def test_clicking_rows_shows_derivation_and_receptive_field(tmp_path, chromium, name):
    table = layer_table(name)
    model = build_model(name)
    page = chromium(_write(tmp_path, f"{name}.html", web.layer_table_html(name)))
    rows = page.locator("tr[data-row]")
    assert rows.count() == len(table.rows)
    seen = set()
    for i, row in enumerate(table.rows):
        rows.nth(i).click()
        text = page.locator("[data-role=derivation]").inner_text()
        box = {k: page.locator("[data-role=box]").get_attribute(k) for k in ("x", "width")}
        assert page.locator("tr[aria-selected=true]").count() == 1
        assert rows.nth(i).get_attribute("aria-selected") == "true"
        assert text not in seen, f"{row.name}: the derivation did not change"
        seen.add(text)
        assert row.name in text and "x".join(map(str, row.output_shape[1:])) in text
        if row.kind in ("conv", "maxpool"):
            assert explain_layer(name, row.name) in text
            unit = (row.output_shape[-1] - 1) // 2
            top, left, size = receptive_box(model, row.name, unit, unit)
            assert (int(box["x"]), int(box["width"])) == (left, size) == \
                (left, row.receptive_field)
        elif row.kind == "fc":
            assert (int(box["x"]), int(box["width"])) == (0, table.input_size)


def test_rows_work_from_the_keyboard(tmp_path, chromium):
    page = chromium(_write(tmp_path, "t.html", web.layer_table_html("zfnet")))
    rows = page.locator("tr[data-row]")
    assert all(rows.nth(i).get_attribute("tabindex") == "0" for i in range(rows.count()))
    first = page.locator("[data-role=derivation]").inner_text()
    rows.nth(2).focus()
    page.keyboard.press("Enter")
    assert rows.nth(2).get_attribute("aria-selected") == "true"
    assert page.locator("[data-role=derivation]").inner_text() != first
    page.keyboard.press("ArrowDown")
    page.keyboard.press(" ")
    assert rows.nth(3).get_attribute("aria-selected") == "true"
    assert page.locator("[data-role=box]").get_attribute("data-layer") == \
        layer_table("zfnet").rows[3].name


# ---------------------------------------------------------------- the feature-map explorer

def _images(n: int, noise: int = 0) -> torch.Tensor:
    """``n`` distinct (3, 227, 227) uint8 images: shifted copies of the example image."""
    base = torch.from_numpy(web.example_image(227)).permute(2, 0, 1)     # (3, H, W)
    gen = torch.Generator().manual_seed(0)
    out = torch.stack([base.roll(17 * i, dims=-1) for i in range(n)])    # (n, 3, H, W)
    if noise:
        jitter = torch.randint(-noise, noise + 1, out.shape, generator=gen)
        out = (out.int() + jitter).clamp(0, 255).to(torch.uint8)
    return out


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: build_model(name).eval() for name in ("alexnet", "zfnet")}


def _explorer_pixels(page) -> dict[str, str]:
    page.wait_for_function("document.querySelector('[data-zfkit=explorer]')"
                           ".getAttribute('data-drawn') !== null")
    return page.evaluate("""() => { const r = n => document.querySelector(`[data-role=${n}]`);
      return {drawn: r("map-canvas").closest("[data-zfkit]").getAttribute("data-drawn"),
              map: r("map-canvas").toDataURL(), image: r("image-canvas").toDataURL(),
              caption: r("caption").textContent}; }""")


def _choose(page, role: str, index: int) -> dict[str, str]:
    before = page.locator("[data-zfkit=explorer]").get_attribute("data-drawn")
    page.locator(f"[data-role={role}]").select_option(index=index)
    page.wait_for_function(f"document.querySelector('[data-zfkit=explorer]')"
                           f".getAttribute('data-drawn') !== {json.dumps(before)}")
    return _explorer_pixels(page)


def test_every_selection_changes_the_explorer(tmp_path, chromium, nets):
    piece = web.feature_explorer_html(nets, _images(3), layers=("conv1", "conv2", "conv5"),
                                      channels=4, image_labels=["a", "b", "c"],
                                      source="random weights, a test")
    page = chromium(_write(tmp_path, "explorer.html", piece))
    assert "random weights, a test" in page.locator(".zfkit-source").inner_text()
    start = _explorer_pixels(page)
    assert start["drawn"] == f"alexnet/conv1/0/{piece.data['nets'][0]['layers'][0]['channels'][0]}"
    steps = [("channel", 1, {"map"}), ("image", 2, {"map", "image"}), ("layer", 2, {"map"}),
             ("net", 1, {"map"})]
    state = start
    for role, index, changed in steps:
        new = _choose(page, role, index)
        for what in changed:
            assert new[what] != state[what], f"changing the {role} did not change the {what}"
        assert new["caption"] != state["caption"]
        state = new
    assert state["drawn"].startswith("zfnet/conv5/2/")
    # each map is drawn on its own scale: its largest value gets the colour map's last colour
    top = page.evaluate("""() => { const c = document.querySelector('[data-role=map-canvas]');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let best = [0, 0, 0];
      for (let i = 0; i < d.length; i += 4) if (d[i + 1] > best[1]) best = [d[i], d[i+1], d[i+2]];
      return best; }""")
    lut = base64.b64decode(piece.data["cmap"])
    peak = piece.data["nets"][1]["layers"][2]["peaks"][2][1]
    assert peak == 0 or top == list(lut[-3:])


def test_explorer_size_budget(nets):
    piece = web.feature_explorer_html(nets, _images(12, noise=12), channels=8,
                                      source="budget check")
    assert piece.nbytes <= web.MAX_EXPLORER_BYTES, piece.nbytes
    with pytest.raises(ValueError, match="more than the budget"):
        web.feature_explorer_html(nets, _images(2), channels=2, source="x", max_bytes=10_000)


def test_explorer_rejects_bad_arguments(nets):
    with pytest.raises(ValueError, match="no feature layer"):
        web.feature_explorer_html(nets, _images(1), layers=("conv9",), source="x")
    with pytest.raises(ValueError, match="image_labels"):
        web.feature_explorer_html(nets, _images(2), image_labels=["a"], source="x")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        web.feature_explorer_html(nets, _images(1)[0], source="x")


# ---------------------------------------------------------------- a real page in every setting

def _all_pieces(nets):
    return [web.calculator_html(), web.layer_table_html("alexnet"),
            web.feature_explorer_html(nets, _images(2), layers=("conv1", "conv2"), channels=2,
                                      source="a test")]


def test_without_javascript_the_static_figure_stays(tmp_path, chromium, nets):
    figure = ('<figure id="static"><img alt="the static figure" width="60" height="40" src="'
              + web._data_uri(web.example_image(40)) + '"></figure>')
    page = chromium(_write(tmp_path, "nojs.html", *_all_pieces(nets), before=figure), js=False)
    assert page.locator("#static img").is_visible()
    for i in range(3):
        assert not page.locator("[data-zfkit]").nth(i).is_visible()
    notes = page.locator(".zfkit-noscript")
    assert notes.count() == 3 and all(notes.nth(i).is_visible() for i in range(3))
    assert "needs JavaScript" in page.inner_text("body")
    page = chromium(tmp_path / "nojs.html")                  # with JavaScript: no notes
    assert page.locator(".zfkit-noscript").count() == 0
    assert page.locator("[data-zfkit]").nth(0).is_visible()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_phone_width_labels_and_contrast(tmp_path, chromium, nets, theme):
    page = chromium(_write(tmp_path, "all.html", *_all_pieces(nets), theme=theme), width=390)
    _explorer_pixels(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        '[data-zfkit] input, [data-zfkit] select')].filter(e => e.labels.length === 0
        && !e.getAttribute('aria-label')).map(e => e.outerHTML)""")
    assert unlabelled == []
    colors = page.evaluate("""() => { const s = getComputedStyle(document.querySelector(
        '[data-zfkit=table]')); return [s.color, s.backgroundColor]; }""")
    fg, bg = ([int(v) for v in re.findall(r"\d+", c)[:3]] for c in colors)

    def luminance(rgb: list[int]) -> float:
        lin = [(v / 255) / 12.92 if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 7, colors
    assert (luminance(bg) < 0.1) == (theme == "dark"), colors


# ---------------------------------------------------------------- the HTML and data, no browser

def test_static_files_ship_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "zfkit.static" in config["tool"]["setuptools"]["packages"]
    assert {"*.js", "*.css"} <= set(config["tool"]["setuptools"]["package-data"]["zfkit.static"])
    assert "window.zfkit" in web.static_text("zfkit.js")
    assert "html[data-theme=\"dark\"]" in web.static_text("zfkit.css")
    assert "</script" not in web.static_text("zfkit.js").lower()
    for url in re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", web.static_text("zfkit.js")):
        assert url == "http://www.w3.org/", f"the script must fetch nothing: {url}"


def test_a_piece_is_one_block_with_its_data():
    piece = web.layer_table_html("zfnet")
    markup = piece._repr_html_()
    assert markup == piece.html and len(markup.encode()) == piece.nbytes
    assert markup.count("<script>") == 1 and markup.count("<style>") == 1
    assert ' hidden>' in markup and 'class="zfkit-noscript"' in markup
    assert repr(piece).startswith("<zfkit.web table:") and len(repr(piece)) < 80
    payload = re.search(r'<script type="application/json" class="zfkit-data">(.*?)</script>',
                        markup, re.S).group(1)
    assert json.loads(payload) == json.loads(json.dumps(piece.data))
    ids = re.findall(r'\bid="([^"]+)"', markup)
    assert len(ids) == len(set(ids))
    assert web.layer_table_html("zfnet").html != markup   # fresh ids: two pieces on one page


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_table_numbers_come_from_zfkit_shapes(name):
    table = layer_table(name)
    model = build_model(name)
    rows = web.layer_table_html(name).data["rows"]
    assert [r["name"] for r in rows] == [r.name for r in table.rows]
    for data, row in zip(rows, table.rows):
        assert data["cells"][0] == row.name
        assert data["cells"][3] == "x".join(map(str, row.output_shape[1:] + row.output_shape[:1]))
        if row.receptive_field:
            assert data["cells"][4] == f"{row.receptive_field} / {row.jump}"
            unit = (row.output_shape[-1] - 1) // 2
            _, left, size = receptive_box(model, row.name, unit, unit)
            assert (data["box"]["left"], data["box"]["size"]) == (left, size)
        if row.kind in ("conv", "maxpool"):
            assert any(explain_layer(name, row.name) in line for line in data["derivation"])


def test_calculator_refuses_invalid_opening_settings():
    with pytest.raises(ValueError) as theirs:
        conv_output_size(4, 7)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        web.calculator_html(4, 7)


def test_example_image_is_a_labelled_scene():
    img = web.example_image(227)
    assert img.shape == (227, 227, 3) and img.dtype.name == "uint8"
    assert len({tuple(p) for p in img.reshape(-1, 3)}) >= 8   # sky, sun, house, tree, field...
    assert "Synthetic 227x227 example image" in web.layer_table_html("alexnet").html


def test_chapters_call_the_pieces():
    calls = {"01_formula": "zfkit.web.calculator_html(", "02_alexnet": "zfkit.web.layer_table_html(",
             "03_zfnet": "zfkit.web.layer_table_html(", "06_filters": "zfkit.web.feature_explorer_html("}
    for chapter, call in calls.items():
        cells = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        hits = [c for c in code if call in c]
        assert len(hits) == 1, f"{chapter}: expected one cell calling {call}"
        assert all(len(line) <= 79 for line in hits[0].splitlines()), chapter
