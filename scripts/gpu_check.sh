#!/usr/bin/env bash
# The kernels' GPU checks in one run, for a short GPU lease (docs/kernels.md):
#   1. the GPU-only tests (pytest -m gpu: bf16, big tiles, compiled kernels);
#   2. scripts/bench_kernels.py, which writes its table into docs/performance.md;
#   3. every kernel test compiled for the GPU (TRITON_INTERPRET=0), not in the interpreter.
# Each step has its own time cap (seconds, from the environment) so that one slow step cannot
# take the others' output with it; everything lands in OUTDIR.
#
#   bash scripts/gpu_check.sh OUTDIR
set -uo pipefail
out=${1:?usage: bash scripts/gpu_check.sh OUTDIR}
mkdir -p "$out"
export TRITON_INTERPRET=0 PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
parallel=()
if $py -c "import xdist" 2>/dev/null; then parallel=(-n "${JOBS:-8}"); fi

nvidia-smi >"$out/nvidia-smi.txt" 2>&1
echo "== pytest -m gpu"
timeout "${GPU_TESTS_S:-120}" $py -m pytest -q -p no:cacheprovider -m gpu "${parallel[@]}" \
    tests/test_kernels_winograd.py tests/test_kernels_sparse.py 2>&1 | tee "$out/pytest_gpu.txt"
echo "== bench_kernels"
timeout "${BENCH_S:-250}" $py scripts/bench_kernels.py --docs docs/performance.md \
    --out "$out/bench_kernels.json" --time-limit "${BENCH_LIMIT_S:-170}" 2>&1 | tee "$out/bench.txt"
cp docs/performance.md "$out/performance.md"
echo "== every kernel test on the GPU"
timeout "${ALL_TESTS_S:-90}" $py -m pytest -q -p no:cacheprovider "${parallel[@]}" \
    tests/test_kernels_winograd.py tests/test_kernels_sparse.py tests/test_kernels_convert.py \
    2>&1 | tail -60 | tee "$out/pytest_all.txt"
