"""Where a benchmark process spends its CPU, from py-spy's samples instead of cProfile.

cProfile hooks every Python call, so the process it profiles runs several times slower, and the engine
benchmark's CPU milliseconds per order were the profiler's as much as the engine's. py-spy
(a test extra, installed by ``make install``) samples the process from outside at ``RATE`` per second:
the process runs at full speed, so the CPU and throughput figures of the same run are the engine's own.
Each sample is of the thread holding the GIL (``--gil``): the process's Python work, whichever thread
does it. Work that releases the GIL (SQLite executing a statement, socket I/O) and waiting are left
out; without ``--gil``, threads waiting inside SQLite or in a lock's backoff counted as working, and
those waits topped the list.

When py-spy is missing or may not attach (it needs ptrace, which some containers forbid), the run goes
on without samples and says so: the figures stay, the hot list is replaced by the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.common import PY

RATE = 100  # samples per second: about 1% overhead, and thousands of samples in a one-minute run
# Frames that are waiting, not working, even when py-spy counts their thread as running.
WAITING = ("readinto", "recv_into", "_wait_for_tstate_lock", "Condition.wait", "Event.wait", "select",
           "poll_wait_for_socket", "time.sleep", "acquire")


def py_spy() -> str | None:
    """The py-spy next to the venv's python, else one on PATH, else None."""
    beside = Path(PY).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def problem() -> str | None:
    """Why py-spy cannot sample here (not installed, or not allowed to attach), or None when it can.

    Tried once on a one-second python process, so a benchmark never fails for want of a sampler."""
    global _PROBLEM
    if _PROBLEM is None:
        spy = py_spy()
        if spy is None:
            _PROBLEM = "py-spy is not installed (make install puts it in .venv)"
        else:
            with tempfile.TemporaryDirectory() as tmp:
                probe = subprocess.run([spy, "record", "--rate", "50", "--format", "raw", "--output",
                                        str(Path(tmp) / "probe.txt"), "--", PY, "-c",
                                        "import time; t = time.time()\nwhile time.time() - t < 0.5: pass"],
                                       capture_output=True, text=True, timeout=60)
            _PROBLEM = "" if probe.returncode == 0 else (
                f"py-spy could not sample (exit {probe.returncode}: {probe.stderr.strip()[-300:]})")
    return _PROBLEM or None


_PROBLEM: str | None = None


def sampled(args: list[str], raw_path: Path) -> list[str] | None:
    """``args`` (a python command line) run under py-spy, writing raw stacks to ``raw_path``;
    None when py-spy cannot sample here (:func:`problem` says why)."""
    spy = py_spy()
    if spy is None or problem():
        return None
    return [spy, "record", "--gil", "--rate", str(RATE), "--format", "raw", "--output", str(raw_path), "--",
            *args]


def hot_functions(raw_path: Path, top: int = 10) -> dict:
    """The ``top`` functions by own samples (waiting frames left out) and by inclusive samples.

    py-spy's raw format is one line per distinct stack: ``frame;frame;...;leaf count``, outermost first,
    each frame ``function (file:line)``. Lines of one function are folded together.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n = int(count)
        total += n
        if any(w in frames[-1] for w in WAITING):
            waiting += n
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    working = total - waiting

    def rows(counter: Counter[str]) -> list[dict]:
        return [{"function": f, "samples": n, "share": round(n / working, 4) if working else 0.0}
                for f, n in counter.most_common(top)]
    return {"samples": total, "waiting_samples": waiting, "rate_per_s": RATE,
            "own": rows(own), "inclusive": rows(Counter({f: n for f, n in inclusive.items()
                                                         if not f.startswith(("Thread.", "<module>"))}))}


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (file.py)``: the lines of one function fold together."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    return f"{name} ({Path(file).name})" if file else name
