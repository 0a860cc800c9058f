"""The book's promises that need no execution: clean notebooks, one skeleton, Colab installs."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [ROOT / f"{entry['file']}.ipynb" for entry in TOC["chapters"]
            if (ROOT / f"{entry['file']}.ipynb").exists()]


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


CODE_WIDTH = 79   # PEP 8: the rendered page cuts off what is wider


def _code_lines(cell: dict) -> list[tuple[int, str]]:
    """(line number, line) of a code cell, or of the fenced code in a markdown cell (solutions)."""
    lines = list(enumerate(_source(cell).splitlines(), 1))
    if cell["cell_type"] == "code":
        return lines
    code, fenced = [], False
    for j, line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif fenced:
            code.append((j, line))
    return code


def long_code_lines(path: Path, width: int = CODE_WIDTH) -> list[str]:
    """'file, cell i, line j: n characters' for every code line wider than ``width``."""
    return [f"{path.name}, cell {i}, line {j}: {len(line)} characters"
            for i, cell in enumerate(_cells(path)) if cell["cell_type"] in ("code", "markdown")
            for j, line in _code_lines(cell) if len(line) > width]


def test_every_toc_entry_exists():
    missing = [e["file"] for e in TOC["chapters"]
               if not any((ROOT / f"{e['file']}{ext}").exists() for ext in (".ipynb", ".md"))]
    assert not missing
    assert CHAPTERS, "no chapters found"


@pytest.mark.parametrize("path", sorted(ROOT.glob("book/**/*.ipynb")), ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", sorted(ROOT.glob("book/**/*.ipynb")), ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids; without them the build warns and future nbformat refuses
    ids = [c.get("id") for c in _cells(path)]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, (f"{path.name}: cells {missing} have no id; "
                         "add ids with nbformat.validator.normalize")
    assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"


@pytest.mark.parametrize("path", sorted(ROOT.glob("book/**/*.ipynb")), ids=lambda p: p.name)
def test_code_lines_fit_the_column(path):
    too_long = long_code_lines(path)
    assert not too_long, f"wrap these to {CODE_WIDTH} characters:\n" + "\n".join(too_long)


def test_long_line_check_names_file_cell_and_line(tmp_path):
    solution = ["Prose may be as long as it likes: " + "x" * 100 + "\n", "```python\n",
                "z" * (CODE_WIDTH + 2) + "\n", "```\n", "y" * 100]
    cells = [{"cell_type": "markdown", "metadata": {}, "source": solution},
             {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "source": ["short = 1\n", "x" * CODE_WIDTH + "\n", "y" * (CODE_WIDTH + 1)]}]
    path = tmp_path / "wide.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    assert long_code_lines(path) == [f"wide.ipynb, cell 0, line 3: {CODE_WIDTH + 2} characters",
                                     f"wide.ipynb, cell 1, line 3: {CODE_WIDTH + 1} characters"]


# Chapters whose exercise solutions need no state from the chapter (no data, no training): each
# solution runs on its own, in a fresh interpreter, importing what it uses and nothing else.
SELF_CONTAINED = ("01_formula", "02_alexnet", "03_zfnet", "05_training", "06_filters", "07_inside",
                  "08_results")


def _solutions(path: Path) -> list[tuple[str, str]]:
    """(title, code) of every solution dropdown of a chapter; code joins its python blocks."""
    found = []
    for cell in _cells(path):
        if cell["cell_type"] == "markdown":
            for title, body in re.findall(r":::\{dropdown\} (Solution[^\n]*)\n(.*?)\n:::",
                                          _source(cell), re.S):
                found.append((title, "\n".join(re.findall(r"```python\n(.*?)```", body, re.S))))
    return found


def _unused_imports(code: str) -> list[str]:
    tree = ast.parse(code)
    imported = {(alias.asname or alias.name).split(".")[0]
                for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return sorted(imported - used)


SOLUTIONS = [pytest.param(code, id=f"{path.stem}-{title}")
             for path in CHAPTERS if path.stem in SELF_CONTAINED
             for title, code in _solutions(path)]


def test_every_self_contained_chapter_has_solutions():
    assert {p.id.split("-Solution")[0] for p in SOLUTIONS} == set(SELF_CONTAINED)


@pytest.mark.parametrize("code", SOLUTIONS)
def test_solution_runs_and_imports_only_what_it_uses(code):
    assert code.strip(), "a solution needs code that checks its answer"
    assert not _unused_imports(code), f"unused imports: {_unused_imports(code)}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip(), "a solution should print its answer"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_skeleton(path):
    markdown = "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")
    for heading in ("## What you will learn", "## Summary", "## Exercises"):
        assert heading in markdown, f"{path.name} lacks '{heading}'"
    assert ":::{dropdown}" in markdown or "```{dropdown}" in markdown, "exercises need solutions"
    meta = json.loads(path.read_text())["metadata"]
    assert meta.get("accelerator") == "GPU", f"{path.name}: Colab should be asked for a GPU"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_install_cell_points_at_the_configured_repository(path):
    first_code = next(_source(c) for c in _cells(path) if c["cell_type"] == "code")
    urls = re.findall(r"git\+(https://\S+?)[\"']", first_code)
    assert urls == [CONFIG["repository"]["url"]], f"{path.name}: install cell is {first_code!r}"
    assert "import zfkit" in first_code.split("except")[0], "install only where zfkit is missing"
    code = "\n".join(line for line in first_code.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\btorch(vision)?\b", code), "never reinstall torch on Colab"


def test_colab_launch_buttons_are_on():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["execute"]["allow_errors"] is False


def test_cli_prints_a_table():
    out = subprocess.run([sys.executable, "-m", "zfkit", "table", "zfnet", "--input", "224"],
                         capture_output=True, text=True, check=True).stdout
    assert "ZFNet (seed) at 224x224x3" in out and "conv1" in out


def test_cli_explains_bad_model():
    result = subprocess.run([sys.executable, "-m", "zfkit", "table", "vgg"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown model 'vgg'" in result.stderr
