"""Table of the irregular-sampling runs: mean ± std test accuracy per data set and
mode, from each run's results.json. Usage: python benchmarks/irregular/summary.py OUT"""

import json
import pathlib
import sys


def main(out: str) -> None:
    rows = []
    for path in sorted(pathlib.Path(out).glob("*/results.json")):
        r = json.loads(path.read_text())
        dataset, mode = path.parent.name.rsplit("-", 1)
        accs = [v["test_accuracy"] for v in r["per_seed"].values()]
        secs = sum(v["train_seconds"] for v in r["per_seed"].values())
        rows.append(
            f"| {dataset} | {mode} | {100 * r['test_accuracy_mean']:.1f} ± "
            f"{100 * r['test_accuracy_std']:.1f} | "
            + ", ".join(f"{100 * a:.1f}" for a in accs)
            + f" | {secs:.0f} |"
        )
    print("| data set (50 % dropped) | Δt | test accuracy (%) | per seed | seconds |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/irregular")
