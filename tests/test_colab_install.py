"""The Colab install cell, run in a Colab-like environment: a fresh virtual environment where only
torch, torchvision and their own dependencies are present (linked from this machine's environment,
not copied), as on a fresh Colab runtime where torch is preinstalled.

The cell is taken verbatim from a chapter notebook; only its GitHub URL is replaced with a
``git+file://`` URL of a local git repository made from the working tree (so uncommitted work is
what gets installed), and ``--quiet`` is dropped so pip's decisions can be read. The test then
checks that pip left torch alone, that zfkit imports and builds a model, and that a second run of
the cell does not call pip at all.

It needs PyPI (zfkit's other dependencies are installed from it), so it only runs when
``ZFKIT_TEST_COLAB=1`` (CI sets it).
"""
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]

pytestmark = pytest.mark.skipif(os.environ.get("ZFKIT_TEST_COLAB") != "1",
                                reason="needs PyPI: set ZFKIT_TEST_COLAB=1 to run (CI does)")


def _install_cell() -> tuple[str, str]:
    """(notebook name, source of its first code cell) of the first chapter in the book."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    in_toc = [ROOT / f"{entry['file']}.ipynb" for entry in toc["chapters"]]
    for path in in_toc + sorted((ROOT / "book").glob("*.ipynb")):
        if path.exists():
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            code = next(c for c in cells if c["cell_type"] == "code")
            src = code["source"]
            return path.name, "".join(src) if isinstance(src, list) else src
    pytest.fail("no chapter notebook in book/ to take the install cell from")


def _preinstalled() -> list[md.Distribution]:
    """torch, torchvision and everything they require (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    found: dict[str, md.Distribution] = {}
    todo = ["torch", "torchvision"]
    while todo:
        dist = md.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(found.values())


def _colab_like_venv(where: Path) -> Path:
    """A new venv whose site-packages links just torch, torchvision and their dependencies."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    # Colab's pip is recent; the venv's bundled one may be too old to parse git+file:// URLs.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                   check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    for dist in _preinstalled():
        tops = {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}
        for top in tops:
            source, link = ours / top, site / top
            if source.exists() and not link.exists():  # keep the venv's own pip/setuptools
                link.symlink_to(source)
    return python


def _repository_of_working_tree(where: Path) -> Path:
    """A git repository holding the working tree's tracked and untracked, not-ignored files."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        if (ROOT / name).is_file():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, where / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "working tree"]):
        subprocess.run(git + args, cwd=where, check=True)
    return where


def _run(python: Path, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in the venv from its own folder (not the repository, whose zfkit/ would be
    importable from the working directory)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env,
                          cwd=python.parents[1], timeout=900)


def test_install_cell_installs_zfkit_and_leaves_torch_alone(tmp_path):
    notebook, cell = _install_cell()
    assert f"git+{REPO_URL}" in cell, f"{notebook}: unexpected install cell {cell!r}"
    repo = _repository_of_working_tree(tmp_path / "repo")
    python = _colab_like_venv(tmp_path / "venv")
    cell = cell.replace(f"git+{REPO_URL}", f"git+file://{repo}").replace('"--quiet",', "")

    probe = "import torch, torchvision; print('TORCH', torch.__version__, torch.__file__)"
    before = _run(python, probe)
    assert before.returncode == 0, before.stderr
    gone = _run(python, "import zfkit")
    assert gone.returncode != 0, "zfkit is already importable: the venv is not clean"

    first = _run(python, cell + "\n" + probe + "\nfrom zfkit import build_model\n"
                 "out = build_model('zfnet')(torch.zeros(1, 3, 227, 227))\n"
                 "print('ZFKIT', zfkit.__file__, tuple(out.shape))")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    log = first.stdout + first.stderr
    assert "Successfully installed" in log and "zfkit" in log.split("Successfully installed")[1]
    assert "Requirement already satisfied: torch" in log, log[-3000:]
    assert "torch-" not in log.split("Successfully installed")[1].split("\n")[0], \
        "pip reinstalled torch"
    torch_line = next(l for l in first.stdout.splitlines() if l.startswith("TORCH"))
    assert torch_line == before.stdout.strip(), "torch changed version or location"
    zfkit_line = next(l for l in first.stdout.splitlines() if l.startswith("ZFKIT"))
    assert str(tmp_path / "venv") in zfkit_line and zfkit_line.endswith("(1, 20)")
    assert md.version("torch") in torch_line

    again = _run(python, cell + "\nprint('OK')")
    assert again.returncode == 0 and again.stdout.strip() == "OK", \
        "the second run should find zfkit and not call pip: " + again.stdout + again.stderr
