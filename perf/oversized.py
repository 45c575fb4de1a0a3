"""Oversized inputs through the real steps: peak memory, error message and quarantine sizes.

Cases (each in a fresh process, peak RSS from /proc/self/status VmHWM):

* ``one-line``: the annotation file is one line of ``--mib`` MiB without a line break (no header at all);
* ``one-cell``: the sample's header, then one record of ``--mib`` MiB (one cell); both through ``ingest``;
* ``one-cell-dagster``: the ``one-cell`` file materialized by Dagster (``raw_annotations`` in a fresh instance):
  peak memory and what the failure leaves in the Dagster home;
* ``sparse-jpg``: a 2 GiB sparse file named ``.jpg``; ``png-144mp``: a 12000 x 12000 PNG; both through
  ``build_manifest`` (the image_manifest step), which opens images as the describer does.

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


_DAGSTER = """
import tempfile
from pathlib import Path
from dagster import instance_for_test, materialize
from eemo_pipeline.assets.ingestion import raw_annotations
from eemo_pipeline.resources import InputPathsResource, ParquetIOManager, StorageResource
home = Path(tempfile.mkdtemp())
storage = StorageResource(root=str(Path(ROOT).parent / (Path(ROOT).name + "-store")))
with instance_for_test(temp_dir=str(home)) as instance:
    result = materialize([raw_annotations], partition_key=SOURCE, instance=instance, raise_on_error=False,
                         resources={"io_manager": ParquetIOManager(storage=storage), "storage": storage,
                                    "input_paths": InputPathsResource()},
                         run_config={"ops": {"raw_annotations": {"config": {"root": ROOT}}}})
    failure = result.get_step_failure_events()[0].step_failure_data.error
RESULT = {"error": "step failure", "error_bytes": len(failure.to_string().encode()), "quarantined": 0,
          "max_record_bytes": 0, "max_reason_bytes": 0,
          "home_mib": sum(f.stat().st_size for f in home.rglob("*") if f.is_file()) / 2**20}
"""
_IMAGES = """
import struct, zlib
from pathlib import Path
root = Path(ROOT)
if CASE == "sparse-jpg":
    with (root / "image.jpg").open("wb") as handle:
        handle.truncate(2 << 30)
else:  # 12000 x 12000 grey PNG, compressed row by row
    packer, row = zlib.compressobj(1), b"\\0" * 12001
    body = b"".join(packer.compress(row) for _ in range(12000)) + packer.flush()
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0)
    (root / "image.jpg").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                                     + chunk(b"IEND", b""))
"""
_MANIFEST = """
from pathlib import Path
import polars as pl
from eemo_pipeline.sources.manifest import build_manifest
manifest, quarantine = build_manifest(pl.DataFrame({"image_id": ["a"], "image_path": ["image.jpg"]}), Path(ROOT), SOURCE)
RESULT = {"error_bytes": 0, "quarantined": quarantine.height, "max_record_bytes": 0,
          "max_reason_bytes": quarantine["reason"].str.len_bytes().max() or 0, "reason": quarantine["reason"][0] if quarantine.height else "decoded and kept"}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="emotion6")
    parser.add_argument("--mib", type=int, default=200)
    args = parser.parse_args()
    worst = 0.0
    steps = {"one-line": (_WRITE, _INGEST), "one-cell": (_WRITE, _INGEST), "one-cell-dagster": (_WRITE, _DAGSTER),
             "sparse-jpg": (_IMAGES, _MANIFEST), "png-144mp": (_IMAGES, _MANIFEST)}
    for case, (setup, step) in steps.items():
        with tempfile.TemporaryDirectory() as folder:
            variables = {"ROOT": folder, "SOURCE": args.source, "MIB": args.mib,
                         "CASE": "one-cell" if case == "one-cell-dagster" else case}
            images = case in ("sparse-jpg", "png-144mp")
            figures = measure(step, setup=setup, variables=variables, repeats=1)
        worst = max(worst, figures["peak_mib"])
        what = f"{args.source} {case} ({args.mib} MiB)" if not images else case
        print(f"{what}: peak {figures['peak_mib']:.0f} MiB, "
              f"{figures.get('error', 'no error')} message {figures['error_bytes']:,} bytes, "
              f"{figures['quarantined']} quarantined (largest record {figures['max_record_bytes']:,} bytes, "
              f"reason {figures['max_reason_bytes']:,} bytes), {figures['wall_s']:.1f} s"
              + (f": {figures['reason']}" if images else "")
              + (f", Dagster home {figures['home_mib']:.2f} MiB" if "home_mib" in figures else ""))
    print("verdict:", "PASS" if worst < 1024 else "MISS", f"(peak {worst:.0f} MiB, target < 1024 MiB)")


if __name__ == "__main__":
    main()
