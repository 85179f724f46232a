#!/usr/bin/env bash
# The GPU path proven in one command on a bare CUDA machine without network (torch and
# the libraries there already): warmup-bench installed without dependencies and without
# an index (or, where pip cannot, run from this folder), the CUDA tests (pytest -m cuda,
# each test at most GPU_CHECK_TEST_SECONDS, results in pytest.xml too), then the GPU
# benchmark (scripts/bench_gpu.py: bench.json and bench.md, rewritten after every
# measurement). Everything lands in the folder given as argument, else $OUT, else
# ./gpu-check. A hard limit on the whole: GPU_CHECK_SECONDS (default 480, 8 minutes); pytest
# is stopped with SIGINT, so its summary of failures is still written. Without CUDA: one
# line, exit 2, at once. Works where only `python3` is on PATH.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
limit="${GPU_CHECK_SECONDS:-480}"
per_test="${GPU_CHECK_TEST_SECONDS:-150}"
start=$(date +%s)
left() { echo $(( limit - ($(date +%s) - start) )); }

py=$(command -v python || command -v python3) || {
  echo "gpu_check: neither python nor python3 is on PATH: nothing to check" >&2; exit 2; }
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is false for $py): nothing to check" >&2
  exit 2
fi
mkdir -p "$out"
# no network there: no index, and a time limit in case pip waits for one anyway
if ! timeout 90 "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
    >"$out/install.log" 2>&1; then
  echo "gpu_check: pip could not install the project (see $out/install.log); running it from $(pwd)"
fi
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
"$py" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

# the tests first, keeping 200 s for the benchmark; only test_cuda.py: the other test
# files need packages (pytorch_warmup, lightning, ...) that the GPU machine does not have
WARMUP_BENCH_TEST_TIMEOUT="$per_test" timeout -s INT --kill-after=15 $(( $(left) - 200 )) \
  "$py" -m pytest -q -p no:cacheprovider -m cuda --junitxml="$out/pytest.xml" \
  tests/test_cuda.py 2>&1 | tee "$out/pytest.log"
tests=${PIPESTATUS[0]}

timeout -s INT --kill-after=10 $(( $(left) - 15 )) \
  "$py" scripts/bench_gpu.py --out "$out" --budget $(( $(left) - 75 )) 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}
echo "gpu_check: tests exit $tests, benchmark exit $bench, $(( $(date +%s) - start )) s in all; results in $out/"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
