"""Child processes that die with their parent.

Every process Conum starts (the simulation's delivery process, its temporary
Prefect server) must not outlive the command that started it, even when that
command is killed with SIGKILL and runs no clean-up. On Linux the kernel does
it: ``die_with_parent()`` gives ``subprocess.Popen`` a ``preexec_fn`` that asks
for a signal (``PR_SET_PDEATHSIG``) when the parent goes away.

The kernel sends that signal when the *thread* that started the child ends,
not only the process: start such children from a thread that lives as long
as they do (the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that has the child receive ``sig`` when this process ends (Linux; else None)."""
    prctl = _prctl()  # looked up before the fork: the child only calls it
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return preexec


def start_time(pid: int) -> int | None:
    """Return when ``pid`` started (clock ticks since boot, Linux), or None if no such process.

    A pid and its start time name one process: a pid reused by another process has another start time.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        if sys.platform.startswith("linux"):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0


def same_process(pid: int, started: int | None) -> bool:
    """True if ``pid`` is alive and is the process that started at ``started``."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group ``pgid``, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
