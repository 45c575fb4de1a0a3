"""Oversized inputs through the real steps: peak memory, error message and quarantine sizes.

Cases (each in a fresh process, peak RSS from /proc/self/status VmHWM):

* ``one-line``: the annotation file is one line of ``--mib`` MiB without a line break (no header at all);
* ``one-cell``: the sample's header, then one record of ``--mib`` MiB (one cell); both through ``ingest``;
* ``one-cell-dagster``: the ``one-cell`` file materialized by Dagster (``raw_annotations`` in a fresh instance):
  peak memory and what the failure leaves in the Dagster home;
* ``sparse-jpg``: a 2 GiB sparse file named ``.jpg``; ``png-144mp``: a 12000 x 12000 PNG; both through
  ``build_manifest`` (the image_manifest step), which opens images as the describer does;
* ``png-rgba-x10``: ten 6000 x 6600 RGBA PNGs (158 MB each decoded, under the pixel cap) through
  ``build_manifest`` with 8 threads (its default on a machine of 4 or more cores);
* ``--largest``: instead, for every source, the largest valid input it accepts through ``ingest``: its
  annotation file grown (unique image names) to just under its ``max_file_bytes`` (``sources.yaml``); Affection
  with the synthetic generator of ``perf/ingest.py``; EMOTIC as a ``.mat`` of the release's 23,571 images (a
  compressed ``.mat``'s size does not bound what it unpacks to: its record count is what is measured).

Target: peak under 1 GiB; an error message and every quarantine record capped (a few KiB).

    .venv/bin/python perf/oversized.py [--source emotion6] [--mib 200]
    .venv/bin/python perf/oversized.py --largest [--source affection]
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
_RGBA_PNGS = """
import struct, zlib
from pathlib import Path
root = Path(ROOT)
chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
for n in range(10):  # 6000 x 6600 RGBA, one colour each: ~170 KB files, compressed row by row
    packer, row = zlib.compressobj(9), b"\\0" + bytes([n, 2 * n, 3 * n, 255]) * 6000
    body = b"".join(packer.compress(row) for _ in range(6600)) + packer.flush()
    header = struct.pack(">IIBBBBB", 6000, 6600, 8, 6, 0, 0, 0)
    (root / f"{n}.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                                   + chunk(b"IEND", b""))
"""
_RGBA_MANIFEST = """
from pathlib import Path
import polars as pl
from eemo_pipeline.sources.manifest import ByteBudget, build_manifest
from eemo_pipeline.contracts import table_contract
budget = ByteBudget(int(table_contract("image_manifest").rules["max_decoded_bytes_in_flight"]))
annotations = pl.DataFrame({"image_id": [str(n) for n in range(10)], "image_path": [f"{n}.png" for n in range(10)]})
manifest, quarantine = build_manifest(annotations, Path(ROOT), SOURCE, workers=8, budget=budget)
RESULT = {"error_bytes": 0, "quarantined": quarantine.height, "max_record_bytes": 0, "max_reason_bytes": 0,
          "reason": f"{int(manifest['decodable'].sum())} of 10 decoded, at most {budget.peak / 2**20:.0f} MiB "
                    "reserved at once"}
"""
_MANIFEST = """
from pathlib import Path
import polars as pl
from eemo_pipeline.sources.manifest import build_manifest
manifest, quarantine = build_manifest(pl.DataFrame({"image_id": ["a"], "image_path": ["image.jpg"]}), Path(ROOT), SOURCE)
RESULT = {"error_bytes": 0, "quarantined": quarantine.height, "max_record_bytes": 0,
          "max_reason_bytes": quarantine["reason"].str.len_bytes().max() or 0, "reason": quarantine["reason"][0] if quarantine.height else "decoded and kept"}
"""


# (the sample's annotation file that is grown, the image name in it as a pattern, the name's replacement with {n}).
_GROW = {
    "abstract8": ("ABSTRACT_groundTruth.csv", rb"'abstract_(\d+)\.jpg'", rb"'abstract_\1_{n}.jpg'"),
    "emotion6": ("ground_truth.txt", rb"^([a-z]+)/(\d+)\.jpg", rb"\1/\2_{n}.jpg"),
    "findingemo": ("annotations_single.ann", rb"/Run_(\d)/", rb"/Run_\1_{n}/"),
    "gaped": ("A.txt", rb"^A(\d+)\.jpg", rb"A\1_{n}.jpg"),
    "oasis": ("OASIS.csv", rb"^(\d+),([^,]+),", rb"\1,\2 {n},"),
}
_INGEST_LARGEST = """
from pathlib import Path
from eemo_pipeline.sources.ingest import ingest
result = ingest(SOURCE, Path(ROOT))
RESULT = {"error_bytes": 0, "quarantined": result.quarantine.height, "kept": result.annotations.height,
          "max_record_bytes": 0, "max_reason_bytes": 0}
"""


_DAGSTER_LARGEST = """
from pathlib import Path
from dagster import instance_for_test, materialize
from eemo_pipeline.assets.ingestion import raw_annotations
from eemo_pipeline.resources import InputPathsResource, ParquetIOManager, StorageResource
storage = StorageResource(root=STORE)
with instance_for_test(temp_dir=STORE) as instance:
    result = materialize([raw_annotations], partition_key=SOURCE, instance=instance, raise_on_error=False,
                         resources={"io_manager": ParquetIOManager(storage=storage), "storage": storage,
                                    "input_paths": InputPathsResource()},
                         run_config={"ops": {"raw_annotations": {"config": {"root": ROOT}}}})
    checks = {e.check_name: e.passed
              for e in result.get_asset_check_evaluations()}
    kept = result.asset_materializations_for_node("raw_annotations")[0].metadata["rows_kept"].value
RESULT = {"error_bytes": 0, "quarantined": 0, "kept": kept, "max_record_bytes": 0, "max_reason_bytes": 0,
          "success": result.success, "checks": checks}
"""


def _grow(source: str, root: Path, limit: int) -> Path:
    """The sample of ``source`` at ``root`` with its annotation file grown to just under ``limit`` bytes: its data
    lines again and again, each copy's image names made unique (written here, in the parent: not measured)."""
    import re

    from eemo_pipeline.sources import source_module

    source_module(source).write_sample(root)
    file, pattern, replacement = _GROW[source]
    path = root / file
    data = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    header, *lines = [line for line in data.split(b"\n") if line.strip(b"\t ")]
    name = re.compile(pattern, re.MULTILINE)
    with path.open("wb") as handle:
        handle.write(header + b"\n")
        size, n = len(header) + 1, 0
        while True:
            block = b"".join(name.sub(replacement.replace(b"{n}", str(n).encode()), line) + b"\n" for line in lines)
            if size + len(block) > limit:
                break
            handle.write(block)
            size, n = size + len(block), n + 1
    return path


def _emotic_release(root: Path) -> Path:
    """An Annotations.mat of EMOTIC's release size (train 17,077, val 2,088, test 4,389 images), the sample's
    images repeated under new names."""
    from eemo_pipeline.sources import emotic

    emotic.write_sample(root)
    counts = {"train": 17_077, "val": 2_088, "test": 4_389}
    splits = {
        split: [{**image, "filename": f"{n}_{image['filename']}"}
                for n, image in zip(range(count), (img for _ in range(count) for img in emotic._SAMPLE[split]))]
        for split, count in counts.items()
    }
    emotic._write_mat(root / emotic.ANNOTATIONS, splits)
    return root / emotic.ANNOTATIONS


def largest(only: str | None, dagster: bool) -> float:
    """Print the peak of ``ingest`` on each source's largest accepted input; returns the worst peak in MiB."""
    from eemo_pipeline.contracts import source_facts, table_contract
    from eemo_pipeline.sources import SOURCES
    from perf.synthetic import write_affection_csv

    worst = 0.0
    for source in [only] if only else SOURCES:
        limit = source_facts(source).max_file_bytes or int(table_contract("raw_annotations").rules["max_file_bytes"])
        with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as store:
            root = Path(folder)
            if source == "affection":  # ~102 bytes a row: rows for just under the limit (checked below)
                path = write_affection_csv(root / "affection_raw_public_version_0.csv", rows=int(limit / 104))
            elif source == "emotic":
                path = _emotic_release(root)
            else:
                path = _grow(source, root, limit)
            size = path.stat().st_size
            assert size <= limit, (source, size, limit)
            runs = {"ingest": _INGEST_LARGEST, **({"materialized by Dagster": _DAGSTER_LARGEST} if dagster else {})}
            for how, step in runs.items():
                figures = measure(step, variables={"ROOT": folder, "STORE": store, "SOURCE": source}, repeats=1)
                worst = max(worst, figures["peak_mib"])
                done = (f", run success {figures['success']}, checks {figures['checks']}" if "success" in figures
                        else f", {figures['quarantined']:,} quarantined")
                print(f"{source} largest accepted, {how}: {path.name} {size / 2**20:.1f} MiB (limit "
                      f"{limit / 2**20:.0f} MiB): peak {figures['peak_mib']:.0f} MiB, {figures['kept']:,} rows kept"
                      f"{done}, {figures['wall_s']:.1f} s")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="default: emotion6 (the oversized cases), every source (--largest)")
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--largest", action="store_true", help="each source's largest accepted input")
    parser.add_argument("--dagster", action="store_true", help="with --largest: also materialize raw_annotations")
    args = parser.parse_args()
    if args.largest:
        worst = largest(args.source, args.dagster)
        print("verdict:", "PASS" if worst < 1024 else "MISS", f"(peak {worst:.0f} MiB, target < 1024 MiB)")
        return
    source = args.source or "emotion6"
    worst = 0.0
    steps = {"one-line": (_WRITE, _INGEST), "one-cell": (_WRITE, _INGEST), "one-cell-dagster": (_WRITE, _DAGSTER),
             "sparse-jpg": (_IMAGES, _MANIFEST), "png-144mp": (_IMAGES, _MANIFEST),
             "png-rgba-x10": (_RGBA_PNGS, _RGBA_MANIFEST)}
    for case, (setup, step) in steps.items():
        with tempfile.TemporaryDirectory() as folder:
            variables = {"ROOT": folder, "SOURCE": source, "MIB": args.mib,
                         "CASE": "one-cell" if case == "one-cell-dagster" else case}
            images = case in ("sparse-jpg", "png-144mp", "png-rgba-x10")
            figures = measure(step, setup=setup, variables=variables, repeats=1)
        worst = max(worst, figures["peak_mib"])
        what = f"{source} {case} ({args.mib} MiB)" if not images else case
        print(f"{what}: peak {figures['peak_mib']:.0f} MiB, "
              f"{figures.get('error', 'no error')} message {figures['error_bytes']:,} bytes, "
              f"{figures['quarantined']} quarantined (largest record {figures['max_record_bytes']:,} bytes, "
              f"reason {figures['max_reason_bytes']:,} bytes), {figures['wall_s']:.1f} s"
              + (f": {figures['reason']}" if images else "")
              + (f", Dagster home {figures['home_mib']:.2f} MiB" if "home_mib" in figures else ""))
    print("verdict:", "PASS" if worst < 1024 else "MISS", f"(peak {worst:.0f} MiB, target < 1024 MiB)")


if __name__ == "__main__":
    main()
