"""Opt-in memory tracing of gunicorn workers (issue 16): where a worker's memory goes during a soak.

``GUNICORN_TRACEMALLOC=<directory>`` (read by ``config/gunicorn.py``, off when unset) makes every worker,
right after the fork, start ``tracemalloc`` (``GUNICORN_TRACEMALLOC_FRAMES`` frames per allocation, 1 by
default; 0: no tracemalloc, only the allocator and RSS lines) and a daemon thread that every
``GUNICORN_TRACEMALLOC_SECONDS`` (120 by default) appends a report to ``<directory>/memtrace-<pid>.txt``,
and once more when the worker exits. A report separates the three layers of a worker's memory:

- the Python heap: what ``tracemalloc`` traces now (every object, small ones from pymalloc's arenas and
  big ones from malloc), and the top lines by growth since the first report (the baseline, taken after
  warm-up) and since the previous one;
- glibc malloc (``mallinfo2``): bytes in use, bytes free but kept inside its arenas (fragmentation, or
  memory not trimmed), and bytes in separate mmaps (big blocks such as argon2's memory, unmapped on free);
- the kernel's view: RSS (anonymous and file-backed, ``/proc/self/status``).

Python heap growth shows up in the first, allocator growth in the second, the rest (pymalloc arenas
kept, shared pages touched after the fork) only in the third. Off, nothing of this module runs but
``environment_settings`` (three environment lookups when a server starts). On, tracemalloc makes every
allocation slower, each traced block costs about 60 bytes more (1 frame) and a report briefly needs
memory for a snapshot (kept only as sizes by line): for soaks and investigations, not for production.
With 0 frames a report costs a few milliseconds and nothing runs in between.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import threading
import time
import tracemalloc
from pathlib import Path

DEFAULT_SECONDS = 120
TOP = 25
_IGNORE = (tracemalloc.__file__, __file__, "<frozen importlib._bootstrap>",
           "<frozen importlib._bootstrap_external>", "<unknown>")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def mallinfo() -> dict | None:
    """glibc's counters, summed over all its arenas (None without glibc 2.33+): ``arena`` bytes taken
    from the system for the heaps, ``in_use`` of them in use, ``free`` kept free inside them, ``mmap``
    bytes in blocks mapped on their own."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        call = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = _Mallinfo2
    info = call()
    return {"arena": info.arena, "in_use": info.uordblks, "free": info.fordblks, "mmap": info.hblkhd,
            "arenas_top_free": info.keepcost}


def proc_status() -> dict:
    """VmRSS, RssAnon and RssFile of this process in bytes (empty where /proc is not there)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def _mib(value: float) -> str:
    return f"{value / 1048576:.2f} MiB"


def _top(stats: list, limit: int) -> list[str]:
    lines = []
    for stat in stats[:limit]:
        frame = stat.traceback[0]
        lines.append(f"  {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks  "
                     f"(now {stat.size / 1024:.1f} KiB)  {frame.filename}:{frame.lineno}")
    return lines


def _gc() -> str:
    """Objects the collector tracks and its runs by generation: garbage in reference cycles stays until
    a collection of its generation (the oldest one runs rarely), so the count is a sawtooth."""
    runs = "/".join(str(stat["collections"]) for stat in gc.get_stats())
    return f"gc objects {len(gc.get_objects())}, collections by generation {runs}"


def _by_line(snapshot: tracemalloc.Snapshot) -> dict[tuple[str, int], tuple[int, int]]:
    """(file, line) -> (bytes, blocks): all a report keeps of a snapshot (the traces themselves take
    tens of MiB)."""
    return {(stat.traceback[0].filename, stat.traceback[0].lineno): (stat.size, stat.count)
            for stat in snapshot.statistics("lineno")}


def _growth(now: dict, then: dict, limit: int) -> list[str]:
    diffs = []
    for line in now.keys() | then.keys():
        size, count = now.get(line, (0, 0))
        old_size, old_count = then.get(line, (0, 0))
        diffs.append((size - old_size, count - old_count, size, line))
    diffs.sort(key=lambda d: (-abs(d[0]), d[3]))
    return [f"  {diff / 1024:+10.1f} KiB {blocks:+8d} blocks  (now {size / 1024:.1f} KiB)  {name}:{lineno}"
            for diff, blocks, size, (name, lineno) in diffs[:limit]]


class Tracer:
    """One worker's reports. ``report()`` appends one to the file; the first one is the baseline."""

    def __init__(self, path: Path, *, top: int = TOP):
        self.path = path
        self.top = top
        self.started = time.monotonic()
        self.baseline: dict | None = None
        self.previous: dict | None = None
        self.lock = threading.Lock()

    def _python(self) -> list[str]:
        if not tracemalloc.is_tracing():
            return [f"python heap: not traced (0 frames), {_gc()}"]
        traced, peak = tracemalloc.get_traced_memory()
        own = tracemalloc.get_tracemalloc_memory()
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, name) for name in _IGNORE])
        lines = _by_line(snapshot)
        del snapshot
        out = [f"python heap (tracemalloc): traced {_mib(traced)}, peak {_mib(peak)}, "
               f"tracemalloc's own {_mib(own)}, {_gc()}"]
        if self.baseline is None:
            self.baseline = lines
            out.append("(baseline)")
        else:
            out.append(f"top {self.top} lines by growth since the baseline:")
            out += _growth(lines, self.baseline, self.top)
            if self.previous is not self.baseline:
                out.append(f"top {self.top} lines by growth since the previous report:")
                out += _growth(lines, self.previous, self.top)
        self.previous = lines
        return out

    def report(self, reason: str = "interval") -> str:
        with self.lock:
            status = proc_status()
            malloc = mallinfo()
            out = [f"=== pid {os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                   f"t={time.monotonic() - self.started:.0f}s ({reason})",
                   "rss: " + ", ".join(f"{name} {_mib(value)}" for name, value in status.items())]
            if malloc is not None:
                out.append(f"malloc (all arenas): heaps {_mib(malloc['arena'])} = in use {_mib(malloc['in_use'])} "
                           f"+ free {_mib(malloc['free'])}; mmapped blocks {_mib(malloc['mmap'])}")
            out += self._python()
            text = "\n".join(out) + "\n"
            with self.path.open("a") as file:
                file.write(text)
            return text


_tracer: Tracer | None = None


def environment_settings() -> tuple[str, float, int]:
    """``GUNICORN_TRACEMALLOC`` (the directory; empty: off), ``GUNICORN_TRACEMALLOC_SECONDS`` and
    ``GUNICORN_TRACEMALLOC_FRAMES``, as both servers' start-up reads them (config/serve.py,
    config/gunicorn.py)."""
    return (os.environ.get("GUNICORN_TRACEMALLOC", ""),
            float(os.environ.get("GUNICORN_TRACEMALLOC_SECONDS", str(DEFAULT_SECONDS))),
            int(os.environ.get("GUNICORN_TRACEMALLOC_FRAMES", "1")))


def start(directory: str | os.PathLike, seconds: float = DEFAULT_SECONDS, *, frames: int = 1,
          top: int = TOP) -> Tracer:
    """In a worker, after the fork: start tracemalloc (unless ``frames`` is 0) and the reporting thread
    (a daemon: it never holds the worker up). The first report comes after ``seconds``, past the warm-up:
    the baseline of the lines' growth."""
    global _tracer
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if frames > 0:
        tracemalloc.start(frames)
    tracer = _tracer = Tracer(path / f"memtrace-{os.getpid()}.txt", top=top)

    def loop():
        while True:
            time.sleep(seconds)
            tracer.report()

    threading.Thread(target=loop, name="memtrace", daemon=True).start()
    return tracer


def stop(reason: str = "exit") -> None:
    """A last report (the worker exits), when tracing was started here."""
    if _tracer is not None:
        _tracer.report(reason)
