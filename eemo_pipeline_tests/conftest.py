from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    root.mkdir()
    return root
