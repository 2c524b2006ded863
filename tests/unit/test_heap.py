"""Giving freed heap memory back: glibc's malloc_trim where it exists, nothing elsewhere."""

from __future__ import annotations

import ctypes

import pytest

from podpath.collectors import heap


def test_release_runs_where_the_c_library_has_malloc_trim() -> None:
    """On this (glibc) machine the trim is found and called without error."""
    assert heap._malloc_trim() is not None
    heap.release_freed_heap()


def test_a_c_library_without_malloc_trim_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """musl has no malloc_trim: the lookup's AttributeError means nothing to do."""

    class NoTrim:
        def __init__(self, name: object) -> None:
            del name

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    monkeypatch.setattr(ctypes, "CDLL", NoTrim)
    assert heap._malloc_trim() is None
    heap.release_freed_heap()
