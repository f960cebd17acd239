#!/usr/bin/env bash
# Issue 13's GPU targets, in one device call (the device machine lacks SimpleITK, MONAI,
# pydicom, highdicom, nibabel: `bash ../shared/gpu/prepare.sh` packs their wheels into .gpu/
# first, on this machine). Then, with the device tool, carry [".gpu"]:
#
#   bash benchmarks/gpu_predict.sh          # about 3 min on an H200, most of it the phantom CT
#
# Writes $OUT/bench_predict_gpu.txt and .json (copy them to benchmarks/results/) and
# $OUT/cpu_check.txt, the same benchmark's 160-slice case on the device's CPU cores, so the two
# come from one machine.
set -euo pipefail
bash .gpu/setup.sh
export PYTHONPATH=/tmp/site:$PWD
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 benchmarks/bench_predict.py --device cuda --slices 160 --threads 8 \
    --cache /tmp/bench_cache --out-txt "$out/bench_predict_gpu.txt"
python3 benchmarks/bench_predict.py --device cpu --slices 160 --threads 16 \
    --cache /tmp/bench_cache --out-txt "$out/cpu_check.txt"
