"""CPU training speed: keep freed memory in the process instead of handing it back to the kernel.

On Linux, glibc's ``malloc`` serves every block above a threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` as soon as it is freed. A training step allocates and frees
the same large tensors every step: at batch 32, ZFNet's first feature maps (64 x 113 x 113 per
image, 105 MB per tensor, several of them for the ReLU, the pooling and their gradients) and fc6's
weight gradient (4096 x 9216, 151 MB). Each new ``mmap`` arrives as untouched pages, so the first
write to each 4 KiB page is a page fault in which the kernel finds and zeroes a page: time spent
neither on arithmetic nor on moving data. ZFNet suffers more than AlexNet because its first maps
are four times larger (113 x 113 against 56 x 56): a profile of one step shows a plain
``fill_`` of zeros on those maps costing as much as a whole convolution.

:func:`reuse_freed_memory` tells glibc (``mallopt``) to serve large blocks from its heap and to
keep freed memory for the next allocation, so most steps map no new page. Not every step: torch
asks for 64-byte aligned blocks, glibc cuts each from a slightly larger one and keeps the spare
bytes after it in its per-thread cache, and until that small piece is taken again the freed block
cannot merge with the free memory behind it, so a request of the same size may get fresh memory.
Which steps that hits varies from run to run; in 100 MB alloc/free rounds
(``tests/test_cpumem.py``) it was at most 5 of 16. Training steps settle faster: at batch 32 (one
thread, Adam), glibc's default takes 290,000-470,000 page faults every ZFNet step and
150,000-320,000 every AlexNet step; with reuse the first step takes 260,000-310,000, the next two
up to 63,000, and from the fourth step on (almost) none: of 45 later steps in five runs (three
ZFNet, two AlexNet), one took 25,500.
The arithmetic, and so every number a run produces, is unchanged. The cost: the process keeps its
peak memory until it exits (a training process does anyway). :func:`zfkit.train.fit` calls it for
CPU runs; ``ZFKIT_GLIBC_MALLOC=1`` keeps glibc's defaults. ``bench/bench_train.py`` measures both.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["reuse_freed_memory", "GLIBC_DEFAULT_ENV"]

GLIBC_DEFAULT_ENV = "ZFKIT_GLIBC_MALLOC"
_M_TRIM_THRESHOLD = -1         # <malloc.h>: keep this much free memory at the heap's top
_M_MMAP_MAX = -4               # <malloc.h>: how many blocks may be served by mmap (0: none)
_KEEP = 1 << 30                # 1 GiB: more than any tensor of these networks' steps
_applied = False


def reuse_freed_memory() -> bool:
    """Serve large blocks from glibc's heap and keep freed memory for reuse (process-wide).

    Returns:
        ``True`` when the setting is in force (now or from an earlier call); ``False`` where it does
        not apply: not Linux, not glibc (e.g. musl), or ``ZFKIT_GLIBC_MALLOC=1`` in the environment.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(GLIBC_DEFAULT_ENV) == "1" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; set the trim threshold first, so memory freed from here on
    # stays even if the second call were refused.
    _applied = bool(mallopt(_M_TRIM_THRESHOLD, _KEEP)) and bool(mallopt(_M_MMAP_MAX, 0))
    return _applied
