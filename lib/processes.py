"""Child processes die with their parent (issue 18).

A worker killed with SIGKILL runs no cleanup, so what it forked (the RQ work horse, the PDF extraction
processes, the Tesseract they start) would live on, holding memory and the database socket it inherited.
`die_with_parent()`, called in the child right after the fork, asks Linux to SIGKILL the child when its
parent dies (prctl PR_SET_PDEATHSIG); where that is unavailable (macOS), a child with a loop checks
`parent_is_gone(parent)` between pieces of work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

_libc = None


def _prctl():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc.prctl


def die_with_parent(parent: int | None = None) -> bool:
    """In a freshly forked child: be killed (SIGKILL) when the parent process dies. `parent` is the pid the
    child expects as its parent: when it died before this call (the child was already handed to init), the
    child exits at once. Returns whether the kernel will do it (Linux); elsewhere the caller checks
    `parent_is_gone` in its loop."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            armed = _prctl()(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if parent is not None and parent_is_gone(parent):
        os._exit(1)
    return armed


def parent_is_gone(parent: int) -> bool:
    """Whether the process that started this one has died (this one was re-parented)."""
    return os.getppid() != parent
