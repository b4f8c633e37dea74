"""The README table: the key configuration's ratios from `results/forward.csv`,
`results/gradient.csv` and `results/iterations.csv`.

    python benchmarks/summary.py [--T 17984] [--D 64] [--batch 1]
"""

import argparse
import csv
from pathlib import Path

from _common import RESULTS


def read(name, out):
    path = out / name
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def table(T, D, batch, out=RESULTS) -> str:
    key = dict(T=str(T), D=str(D), batch=str(batch))
    pick = lambda rows: [r for r in rows if all(r.get(k) == v for k, v in key.items())]
    lines = [
        f"LRC, D = P = {D}, T = {T}, batch {batch}, float32; times are medians of "
        "interleaved runs, ratios relative to `lax.scan` in the same run.",
        "",
        "| evaluation | time (ms) | × lax.scan | Newton iterations | peak memory (MiB) |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "sequential": "forward, `Sequential(check_stability=False)` (lax.scan)",
        "sequential_checked": "forward, `Sequential()` (with its stability check)",
        "parallel": "forward, `ParallelNewton()` (default chunked sweep)",
        "parallel_unchunked": "forward, `ParallelNewton(chunk_size=T)` (unchunked)",
        "parallel_assoc": "forward, `ParallelNewton(recurrence=AssociativeScan())`",
        "naive": "forward, naive reference-style quasi-DEER",
        "solve_auto": "forward, `Auto()`",
        "scan_autodiff": "forward + gradient, autodiff through lax.scan",
        "parallel_implicit": "forward + gradient, `ParallelNewton()` (fixed-point VJP)",
        "sequential_implicit": "forward + gradient, `Sequential()` (fixed-point VJP)",
    }

    def label(name):
        if name.startswith("parallel_c") and name[10:].isdigit():
            return f"forward, `ParallelNewton(chunk_size={name[10:]})`"
        return labels.get(name, name)

    forward = {}
    for name in ("forward.csv", "gradient.csv"):
        for r in pick(read(name, out)):
            if r.get("status") != "ok":
                continue
            if name == "forward.csv":
                forward[r["contender"]] = float(r["median_ms"])
            lines.append(
                f"| {label(r['contender'])} | "
                f"{float(r['median_ms']):.1f} | {float(r['ratio_to_scan']):.2f} | "
                f"{r.get('iterations', '') or ''} | {float(r['peak_mib']):.1f} |"
            )
    if "naive" in forward and "parallel" in forward:
        lines += [
            "",
            "The naive reference-style quasi-DEER takes "
            f"{forward['naive'] / forward['parallel']:.2f}× the time of "
            "`ParallelNewton()`.",
        ]
    its = [r for r in read("iterations.csv", out) if r["scale"] in ("1", "1.0")]
    if its:
        worst = max(int(r["iterations_cold"]) for r in its)
        Ts = ", ".join(sorted({r["T"] for r in its}, key=int))
        lines += [
            "",
            f"Newton iterations at initialisation scale, T ∈ {{{Ts}}}: ≤ {worst}.",
        ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=17984)
    p.add_argument("--D", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    text = table(args.T, args.D, args.batch, args.out)
    print(text)
    return text


if __name__ == "__main__":
    main()
