"""Time to import the Dagster code location in a fresh interpreter (target: under 3 s).

The web UI, every run worker and every sensor tick pay this. Prints the best of N fresh imports.

    .venv/bin/python perf/load_time.py [--repeats N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

_CODE = """
import time
start = time.perf_counter()
import eemo_pipeline.definitions as d
d.defs.resolve_asset_graph()
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times = [
        float(subprocess.run([sys.executable, "-c", _CODE], check=True, capture_output=True, text=True).stdout)
        for _ in range(args.repeats)
    ]
    print(f"code location load: best {min(times):.2f} s, worst {max(times):.2f} s over {args.repeats} fresh imports")
    print("verdict:", "PASS" if max(times) < 3 else "MISS", "(target < 3 s)")


if __name__ == "__main__":
    main()
