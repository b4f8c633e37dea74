"""The table of the learning screen: test accuracy (mean ± std over seeds, %) of
every variant on every task, from `runs.jsonl` (written by `screen.py`), with
the epochs until the validation accuracy first left chance.

    python benchmarks/learning/summary.py [--runs benchmarks/results/learning/runs.jsonl]
        [--epochs 8] [--out benchmarks/results/learning/summary.md]
"""

import argparse
import json
import math

import numpy as np


# The number of classes of each task of `screen.py` (chance = 1 / classes).
CLASSES = dict(
    freq=2, memory=2, basicmotions=4, japanesevowels=9, arrowhead=3, gunpoint=2,
    acsf1=10,
)  # fmt: skip
CLASSES["freq-long"] = 2


def leave_chance(val_accuracy, chance):
    """The first epoch whose validation accuracy is above chance + 0.1 (None: never)."""
    for epoch, acc in enumerate(val_accuracy, start=1):
        if acc > chance + 0.1:
            return epoch
    return None


def cell(rows):
    acc = [100 * r["test_accuracy"] for r in rows]
    failed = sum(1 for a in acc if math.isnan(a))
    acc = [a for a in acc if not math.isnan(a)]
    text = f"{np.mean(acc):.1f} ± {np.std(acc):.1f}" if acc else "–"
    if failed:
        text += f" ({failed} diverged)"
    return text + f" [{len(rows)}]"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="benchmarks/results/learning/runs.jsonl")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", default="benchmarks/results/learning/summary.md")
    args = p.parse_args(argv)
    with open(args.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    runs = [r for r in runs if r["epochs"] == args.epochs]
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    lines = [
        f"Test accuracy, % (mean ± std over seeds [number of seeds]), {args.epochs} "
        "epochs, the CLI's default preset (H = D = 32, 2 blocks, lr 3e-3); "
        "`benchmarks/learning/screen.py`. `old`: the 0.2 defaults; `new-he`: the "
        "0.3 defaults (responsive start, learned time scales, normalised skip, "
        "He-uniform MLPs); `new-normres`: the same with Equinox's MLPs; `new`: "
        "that with the 0.2 skip path; the others: one change each (see the "
        "variants in screen.py).",
        "",
        "| task | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for task in tasks:
        cells = []
        for variant in variants:
            rows = [r for r in runs if (r["task"], r["variant"]) == (task, variant)]
            cells.append(cell(rows) if rows else "")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Epoch at which the validation accuracy first exceeds chance + 10 points "
        "(per seed; '–': not within the run):",
        "",
        "| task | " + " | ".join(v for v in variants if v != "minirocket") + " |",
        "|---|" + "---|" * sum(v != "minirocket" for v in variants),
    ]
    for task in tasks:
        cells = []
        for variant in variants:
            if variant == "minirocket":
                continue
            rows = [r for r in runs if (r["task"], r["variant"]) == (task, variant)]
            marks = []
            for r in sorted(rows, key=lambda r: r["seed"]):
                acc = r.get("val_accuracy") or []
                epoch = leave_chance(acc, 1 / CLASSES.get(task, 2))
                marks.append(str(epoch) if epoch else "–")
            cells.append(" ".join(marks))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
