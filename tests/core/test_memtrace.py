"""The opt-in memory tracing of gunicorn workers (config/memtrace.py, ``GUNICORN_TRACEMALLOC`` in
config/gunicorn.py; issue 16): off by default, and when on every report separates the Python heap, the
allocator and RSS, with the lines that grew since the baseline."""

from __future__ import annotations

import gc
import importlib
import re
import tracemalloc

import pytest

from config import memtrace


@pytest.fixture
def tracing():
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start(1)
    yield
    if not was:
        tracemalloc.stop()


_kept = []


def _grow():
    _kept.append([bytearray(1024) for _ in range(2000)])  # about 2 MiB on this line


def test_a_report_names_the_line_that_grew_since_the_baseline(tracing, tmp_path):
    tracer = memtrace.Tracer(tmp_path / "memtrace-1.txt", top=5)
    first = tracer.report()
    assert "(baseline)" in first and "python heap (tracemalloc): traced" in first
    try:
        _grow()
        second = tracer.report()
    finally:
        _kept.clear()
    assert "top 5 lines by growth since the baseline:" in second
    top = second.split("since the baseline:\n")[1].splitlines()[0]
    assert top.endswith(f"test_memtrace.py:{_grow.__code__.co_firstlineno + 1}"), second
    assert float(re.search(r"([+-][\d.]+) KiB", top).group(1)) > 1900
    assert (tmp_path / "memtrace-1.txt").read_text() == first + second  # appended, one after the other


def test_a_report_gives_rss_and_the_allocators_counters(tracing, tmp_path):
    text = memtrace.Tracer(tmp_path / "m.txt").report()
    assert re.search(r"rss: VmRSS [\d.]+ MiB, RssAnon [\d.]+ MiB, RssFile [\d.]+ MiB", text)
    assert re.search(r"gc objects \d+, collections by generation \d+/\d+/\d+", text)
    info = memtrace.mallinfo()
    if info is not None:  # glibc 2.33+
        assert info["arena"] >= info["in_use"] > 0
        assert re.search(r"malloc \(all arenas\): heaps [\d.]+ MiB = in use [\d.]+ MiB \+ free [\d.]+ MiB", text)


def test_start_traces_and_writes_per_process_and_stop_writes_a_last_report(tmp_path, monkeypatch):
    assert not tracemalloc.is_tracing()
    monkeypatch.setattr(memtrace, "_tracer", None)
    try:
        tracer = memtrace.start(tmp_path / "traces", seconds=3600)
        assert tracemalloc.is_tracing()
        assert tracer.path.parent == tmp_path / "traces" and tracer.path.name.startswith("memtrace-")
        memtrace.stop("exit")
        assert "(exit)" in tracer.path.read_text()
    finally:
        tracemalloc.stop()


def test_the_gunicorn_config_traces_a_worker_only_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))  # the config sets it otherwise
    monkeypatch.delenv("GUNICORN_TRACEMALLOC", raising=False)
    monkeypatch.setattr(memtrace, "_tracer", None)
    config = importlib.reload(importlib.import_module("config.gunicorn"))
    try:
        config.post_fork(None, None)
        config.worker_exit(None, None)
        assert not tracemalloc.is_tracing() and not (tmp_path / "traces").exists()  # off: nothing at all

        monkeypatch.setenv("GUNICORN_TRACEMALLOC", str(tmp_path / "traces"))
        monkeypatch.setenv("GUNICORN_TRACEMALLOC_SECONDS", "3600")
        config = importlib.reload(config)
        assert config._memtrace_seconds == 3600.0
        config.post_fork(None, None)
        assert tracemalloc.is_tracing()
        config.worker_exit(None, None)
        (trace,) = (tmp_path / "traces").glob("memtrace-*.txt")
        assert "(exit)" in trace.read_text()
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        monkeypatch.delenv("GUNICORN_TRACEMALLOC", raising=False)
        importlib.reload(config)


def test_with_0_frames_nothing_is_traced_and_a_report_gives_the_allocator_and_rss(tmp_path, monkeypatch):
    assert not tracemalloc.is_tracing()
    monkeypatch.setattr(memtrace, "_tracer", None)
    tracer = memtrace.start(tmp_path, seconds=3600, frames=0)
    assert not tracemalloc.is_tracing()
    text = tracer.report()
    assert "python heap: not traced (0 frames)" in text and "rss: VmRSS" in text and "top " not in text


def test_a_worker_freezes_its_start_up_objects_once_the_application_is_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))  # the config sets it otherwise
    config = importlib.reload(importlib.import_module("config.gunicorn"))
    gc.unfreeze()
    try:
        config.post_worker_init(None)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
