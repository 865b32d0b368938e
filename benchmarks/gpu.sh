#!/usr/bin/env bash
# Run the benchmark harness on an NVIDIA GPU and record the fraction of HBM bandwidth.
#
# Usage, from the repository root of a machine with an NVIDIA GPU and a CUDA build of
# jax (pip install -U "jax[cuda12]"; torch with CUDA is optional and adds its rows):
#
#     bash benchmarks/gpu.sh [OUT_DIR]        # default OUT_DIR: benchmarks/results
#
# It writes OUT_DIR/gpu.json and gpu.md (the harness's tables: step-time ratios, GB/s
# against the STREAM-like copy/triad floor measured on the same GPU in the same run,
# and against the nominal HBM bandwidth when the GPU is one of those listed below)
# and OUT_DIR/gpu-smi.txt (nvidia-smi's view of the device).  Sized for one short
# run: about 5 minutes on an H100/H200, most of it compiling the 2,000-leaf shape.
# BENCH_ARGS adds or overrides harness flags, e.g. BENCH_ARGS="--optimizers adam".
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results}"
mkdir -p "$OUT"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu.sh: no nvidia-smi: this machine has no NVIDIA driver" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version \
  --format=csv | tee "$OUT/gpu-smi.txt"

platform="$(python -c 'import jax; print(jax.devices()[0].platform)' 2>/dev/null || true)"
if [ "$platform" != "gpu" ]; then
  echo "gpu.sh: jax sees no GPU (platform: ${platform:-none}); install a CUDA build:" \
    'pip install -U "jax[cuda12]"' >&2
  exit 3
fi

# Nominal HBM bandwidth of common data-centre GPUs (vendor datasheets), GB/s.
name="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
case "$name" in
  *H200*) nominal=4800 ;;
  *H100*SXM* | *H100*HBM3*) nominal=3350 ;;
  *H100*NVL*) nominal=3900 ;;
  *H100*PCIe* | *H100*) nominal=2000 ;;
  *GH200*) nominal=4000 ;;
  *A100*80GB*SXM* | *A100-SXM4-80GB*) nominal=2039 ;;
  *A100*80GB*) nominal=1935 ;;
  *A100*) nominal=1555 ;;
  *L40S*) nominal=864 ;;
  *) nominal="" ;;
esac
nominal_flag=()
if [ -n "$nominal" ]; then
  nominal_flag=(--nominal-gbps "$nominal")
  echo "nominal HBM bandwidth of $name: $nominal GB/s" | tee -a "$OUT/gpu-smi.txt"
fi

# jax must not reserve most of the GPU up front: torch shares it in the same process,
# and the memory probes read the allocator's real peak.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
timeout 540 python -m benchmarks \
  --shapes big,resnet50,transformer,many \
  --optimizers momentum,rmsprop,adam \
  --repeats 21 --batch-seconds 0.02 \
  "${nominal_flag[@]}" --out "$OUT" ${BENCH_ARGS:-}
