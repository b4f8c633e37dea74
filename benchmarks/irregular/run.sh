#!/usr/bin/env bash
# Irregular sampling (issue 13): 50 % of each series' samples dropped at random
# (neural-CDE protocol), LrcSSM with per-step Δt from the kept time stamps
# ("aware") vs uniform steps ("blind"), five split seeds, BasicMotions and
# JapaneseVowels (bundled with aeon). Semi-implicit Euler in both (explicit Euler is
# unstable for the long gaps, and the toolkit says so). Usage:
#   bash benchmarks/irregular/run.sh [OUT]   (default OUT: runs/irregular)
set -euo pipefail
out=${1:-runs/irregular}
seeds="2345 3456 4567 5678 6789"
for ds in BasicMotions JapaneseVowels; do
  for mode in aware blind; do
    flag=""; [ "$mode" = blind ] && flag="--dt-blind"
    lrc-toolkit train --dataset "$ds" --drop-rate 0.5 --discretisation semi-implicit \
      --seeds $seeds --out "$out/$ds-$mode" --no-progress $flag
  done
done
python benchmarks/irregular/summary.py "$out"
