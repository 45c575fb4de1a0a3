"""Ingest an Affection-sized CSV (526,749 rows) through the real reader and contract validation.

Prints wall time and peak memory of the real ingest and of the floor (a bare polars read of the same file
plus a Parquet write), each measured in a fresh process. Targets: within 5x of the floor, under 1 GiB.

    .venv/bin/python perf/ingest.py [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf.measure import measure  # noqa: E402
from perf.synthetic import AFFECTION_ROWS, write_affection_csv  # noqa: E402

_FLOOR = """
import polars as pl
frame = pl.read_csv(CSV)
frame.write_parquet(OUT, compression="zstd")
"""
_INGEST = """
from pathlib import Path
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.storage import write_parquet
result = ingest("affection", Path(ROOT))
write_parquet(result.annotations, Path(OUT))
write_parquet(result.quarantine, Path(OUT + ".quarantine"))
RESULT = {"kept": result.annotations.height, "quarantined": result.quarantine.height}
"""
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=AFFECTION_ROWS)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "affection_raw_public_version_0.csv"
        started = time.perf_counter()
        write_affection_csv(csv, rows=args.rows)
        print(f"generated {args.rows:,} rows ({csv.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")
        paths = {"CSV": str(csv), "ROOT": str(csv.parent)}
        floor = measure(_FLOOR, variables={**paths, "OUT": f"{folder}/floor.parquet"}, repeats=args.repeats)
        real = measure(_INGEST, variables={**paths, "OUT": f"{folder}/ingest.parquet"}, repeats=args.repeats)
    ratio = real["wall_s"] / floor["wall_s"]
    print(f"floor  (polars read + parquet write): {floor['wall_s']:.2f} s, peak {floor['peak_mib']:.0f} MiB")
    print(f"ingest (reader + contract + parquet): {real['wall_s']:.2f} s, peak {real['peak_mib']:.0f} MiB")
    print(f"ratio to floor: {ratio:.2f}x (target <= 5x); peak memory {real['peak_mib']:.0f} MiB (target < 1024 MiB)")
    print("verdict:", "PASS" if ratio <= 5 and real["peak_mib"] < 1024 else "MISS")


if __name__ == "__main__":
    main()
