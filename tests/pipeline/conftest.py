"""Fixtures of the pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline.support import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Starts Rapport processes; every one still running (and its children) is killed when the test ends."""
    started = Procs(tmp_path)
    yield started
    started.cleanup()
