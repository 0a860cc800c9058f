"""The book's promises that need no execution: clean notebooks, one skeleton, Colab installs."""
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
