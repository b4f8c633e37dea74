#!/usr/bin/env bash
# The GPU suite in one command (issue 12): the parallel solver against lax.scan and
# the LrcSSM training step of three presets, on the first device JAX sees; under
# 8 minutes on one H100/H200. Writes CSVs, a PNG and a summary named after the
# device to benchmarks/results/gpu/. Extra arguments go to benchmarks/gpu.py
# (e.g. --smoke --out /tmp/gpu for the tiny CPU run of the test suite).
set -euo pipefail
cd "$(dirname "$0")/.."
# Let the largest configurations use most of the device (JAX preallocates 75 %).
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
exec python benchmarks/gpu.py --out benchmarks/results/gpu "$@"
