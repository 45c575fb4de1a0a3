#!/usr/bin/env bash
# Issue 15's GPU measurement, run as is on a lent GPU machine: baseline and tuned settings of both training
# stages in one run of perf/train_gpu.py, results into perf/results/train_gpu_h200.json.
#
# The GPU image has torch, transformers, peft and accelerate but neither network nor TRL, datasets or
# liger-kernel. Fetch their wheels into .whl/ (ignored by git) on a machine with network first, for the
# image's Python 3.12 (57 MB; the run tool carries at most 64 MiB):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl trl==1.16.0 datasets==5.2.0 liger-kernel==0.8.5 dill==0.4.1 multiprocess==0.70.19 \
#       xxhash==4.1.0 pyarrow==26.0.1 fsspec==2026.9.0
#
# (pandas==3.1.1, 12 MB, too if the image lacks it: this script names every missing module first.) Then:
#
#   run(command="bash perf/gpu_check.sh", carry=[".whl"], timeout_s=600)          # everything, about 8 min
#   run(command="bash perf/gpu_check.sh sft", carry=[".whl"], timeout_s=300)      # or one stage per call
#   run(command="bash perf/gpu_check.sh grpo", carry=[".whl"], timeout_s=480)
#
# The JSON comes back under $OUT (and is written to perf/results/ on the device); copy it into perf/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
stages="${1:-sft,grpo}"
[ "$stages" = all ] && stages=sft,grpo
python=${PYTHON:-python3}

"$python" - <<'PY'
import importlib.util
missing = [m for m in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "liger_kernel", "dill",
                       "multiprocess", "xxhash", "pyarrow", "pandas", "fsspec") if importlib.util.find_spec(m) is None]
print("missing before install:", ", ".join(missing) or "none", flush=True)
PY
if [ -d .whl ]; then
    # Offline: what the image has satisfies the requirements, the rest comes from .whl/.
    "$python" -m pip install --quiet --no-index --find-links .whl trl==1.16.0 datasets==5.2.0 liger-kernel==0.8.5
fi
"$python" -c "import torch, transformers, peft, trl, datasets; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, \
torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true

name="train_gpu_h200"
[ "$stages" != sft,grpo ] && name="train_gpu_h200_${stages//,/_}"
mkdir -p perf/results "${OUT:-/tmp}"
PYTHONPATH=$PWD "$python" perf/train_gpu.py --stages "$stages" --json "${OUT:-/tmp}/$name.json" \
    2> >(grep -v -e Warning -e warnings.warn >&2)
cp "${OUT:-/tmp}/$name.json" "perf/results/$name.json"
