"""Oversized annotation files through the real ingest step: peak memory, error message and quarantine sizes.

Cases (each in a fresh process, peak RSS from /proc/self/status VmHWM):

* ``one-line``: the annotation file is one line of ``--mib`` MiB without a line break (no header at all).
* ``one-cell``: the sample's header, then one record whose image-name cell holds ``--mib`` MiB.

Target: peak under 1 GiB; an error message and every quarantine record capped (a few KiB).

    .venv/bin/python perf/oversized.py [--source emotion6] [--mib 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf.measure import measure  # noqa: E402

_WRITE = """
from pathlib import Path
from eemo_pipeline.sources import source_module
from eemo_pipeline.sources.reading import read_source
root = Path(ROOT)
module = source_module(SOURCE)
module.write_sample(root)
files = list(read_source(SOURCE, root).files)  # the annotation files the reader reads
path = root / files[0]
header = path.read_bytes().replace(b"\\r", b"\\n").split(b"\\n")[0]
with path.open("wb") as handle:  # in 1 MiB blocks: the setup must not raise the peak it measures
    if CASE == "one-cell":
        handle.write(header + b"\\n")
    for _ in range(MIB):
        handle.write(b"y" * (1 << 20))
    if CASE == "one-cell":
        handle.write(b"\\n")
"""
_INGEST = """
from pathlib import Path
from eemo_pipeline.sources.ingest import ingest
try:
    result = ingest(SOURCE, Path(ROOT))
    records = result.quarantine["record"].fill_null("").str.len_bytes().max() or 0
    reasons = result.quarantine["reason"].str.len_bytes().max() or 0
    RESULT = {"error_bytes": 0, "quarantined": result.quarantine.height, "max_record_bytes": records,
              "max_reason_bytes": reasons}
except Exception as error:
    RESULT = {"error": type(error).__name__, "error_bytes": len(str(error).encode()), "quarantined": 0,
              "max_record_bytes": 0, "max_reason_bytes": 0}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="emotion6")
    parser.add_argument("--mib", type=int, default=200)
    args = parser.parse_args()
    worst = 0.0
    for case in ("one-line", "one-cell"):
        with tempfile.TemporaryDirectory() as folder:
            variables = {"ROOT": folder, "SOURCE": args.source, "MIB": args.mib, "CASE": case}
            figures = measure(_INGEST, setup=_WRITE, variables=variables, repeats=1)
        worst = max(worst, figures["peak_mib"])
        print(f"{args.source} {case} ({args.mib} MiB): peak {figures['peak_mib']:.0f} MiB, "
              f"{figures.get('error', 'no error')} message {figures['error_bytes']:,} bytes, "
              f"{figures['quarantined']} quarantined (largest record {figures['max_record_bytes']:,} bytes, "
              f"reason {figures['max_reason_bytes']:,} bytes), {figures['wall_s']:.1f} s")
    print("verdict:", "PASS" if worst < 1024 else "MISS", f"(peak {worst:.0f} MiB, target < 1024 MiB)")


if __name__ == "__main__":
    main()
