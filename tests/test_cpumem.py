"""zfkit.cpumem: freed memory kept for reuse, so a second large tensor does not fault its pages in.

Each case runs in a fresh interpreter, because the setting is process-wide.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc only")

# Allocate and fill a 100 MB tensor, free it, and count the page faults of doing it again.
CHILD = """
import json, resource, sys
import torch
from zfkit.cpumem import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.empty(25_000_000).fill_(1.0); del x            # 100 MB
before = faults()
y = torch.empty(25_000_000).fill_(2.0)
print(json.dumps({"applied": applied, "faults": faults() - before, "sum": float(y[:10].sum())}))
"""


def _run(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_reused_memory_needs_no_new_pages() -> None:
    pages = 100_000_000 // os.sysconf("SC_PAGE_SIZE")
    default, reused = _run("glibc"), _run("reuse")
    assert reused["applied"] is True
    # glibc's default maps the second block afresh: about one fault per page
    assert default["faults"] > pages // 2, default
    # kept memory is reused: (almost) no faults
    assert reused["faults"] < pages // 50, reused
    assert default["sum"] == reused["sum"] == 20.0


def test_opting_out_keeps_glibcs_defaults() -> None:
    result = _run("reuse", ZFKIT_GLIBC_MALLOC="1")
    assert result["applied"] is False
    assert result["faults"] > 100_000_000 // os.sysconf("SC_PAGE_SIZE") // 2
