from __future__ import annotations

import platform

import pytest

from shared.malloc import pin_mmap_threshold


def test_pins_the_threshold_on_glibc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert pin_mmap_threshold() is (platform.libc_ver()[0] == "glibc")


def test_leaves_an_operators_choice_alone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert pin_mmap_threshold() is False
