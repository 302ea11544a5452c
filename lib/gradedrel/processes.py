"""Child processes that do not outlive their parent.

`die_with_parent(pid)`, called in a child (a llama.cpp server's `preexec_fn`, a sweep
worker's first line): the kernel sends the child SIGTERM when its parent dies, however it
dies (kill -9 included: Linux's PR_SET_PDEATHSIG); a child whose parent is already gone exits
at once. Elsewhere only that check is made, so callers that loop check the parent again
(`parent_alive`).
"""
from __future__ import annotations

import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if not parent_alive(parent_pid):
        os._exit(1)


def parent_alive(parent_pid: int) -> bool:
    """Whether this process's parent is still `parent_pid` (an orphan is re-parented)."""
    return os.getppid() == parent_pid
