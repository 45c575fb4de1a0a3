"""The embedded sample: a small data set per source in its native format, quirks and a few bad rows included."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from eemo_pipeline.sources import SOURCES, source_module
from eemo_pipeline.vad.lexicon import write_sample_lexicon

SAMPLE_LEXICON = Path("vad_lexicon") / "Ratings_Warriner_et_al.csv"


def write_sample(directory: Path, sources: Iterable[str] = SOURCES) -> dict[str, Path]:
    """Write ``directory/<source>/`` for each source (replacing an earlier sample) and a small Warriner-format
    lexicon at ``directory/vad_lexicon/``; returns the source roots."""
    roots = {}
    for source in sources:
        root = Path(directory) / source
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        source_module(source).write_sample(root)
        roots[source] = root.resolve()
    lexicon = Path(directory) / SAMPLE_LEXICON
    lexicon.parent.mkdir(parents=True, exist_ok=True)
    write_sample_lexicon(lexicon)
    return roots
