"""Summarise a sweep of `lrc-toolkit train` runs: one row per run directory (its
`results.json` and `seed_*/metrics.jsonl`), and one figure with every variant's
learning curves averaged over its seeds.

    python benchmarks/scp1/summary.py RUNS_DIR [--out FIGURE.png] [--csv TABLE.csv]

Every sub-folder of RUNS_DIR that holds a `results.json` is one variant. The
columns: the mean over seeds of the best validation accuracy, of the test accuracy
at the (last) best validation epoch, of the training accuracy at the last epoch,
and the seconds per epoch.
"""

import argparse
import csv
import json
import os
import statistics


def _history(run: str, seed) -> list[dict]:
    with open(os.path.join(run, f"seed_{seed}", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def load(runs_dir: str) -> dict[str, dict]:
    out = {}
    for name in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, name, "results.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            results = json.load(f)
        histories = {
            s: _history(os.path.join(runs_dir, name), s) for s in results["seeds"]
        }
        out[name] = {"results": results, "histories": histories}
    return out


def _mean_std(values):
    return statistics.fmean(values), statistics.pstdev(values)


def rows(variants: dict) -> list[dict]:
    table = []
    for name, v in variants.items():
        per_seed = v["results"]["per_seed"]
        hist = v["histories"]
        row = {
            "variant": name,
            "seeds": len(per_seed),
            "val": _mean_std([r["val_accuracy"] for r in per_seed.values()]),
            "test": _mean_std([r["test_accuracy"] for r in per_seed.values()]),
            "train_end": _mean_std([h[-1]["train_accuracy"] for h in hist.values()]),
            "epochs": statistics.fmean(len(h) for h in hist.values()),
            "s_per_epoch": statistics.median(
                r["seconds"] for h in hist.values() for r in h[1:]
            ),
        }
        if "minirocket" in v["results"]:
            m = v["results"]["minirocket"]
            row["minirocket"] = (m["test_accuracy_mean"], m["test_accuracy_std"])
        table.append(row)
    return table


def _pct(ms):
    return f"{100 * ms[0]:.1f} ± {100 * ms[1]:.1f}"


def markdown(table: list[dict]) -> str:
    lines = [
        "| variant | seeds | best val. acc. % | test acc. % | train acc. at end % "
        "| epochs | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r['variant']} | {r['seeds']} | {_pct(r['val'])} | {_pct(r['test'])} "
            f"| {_pct(r['train_end'])} | {r['epochs']:.0f} | {r['s_per_epoch']:.1f} |"
        )
    return "\n".join(lines)


def plot(variants: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    keys = ("train_accuracy", "val_accuracy", "val_loss")
    titles = ("training accuracy", "validation accuracy", "validation loss")
    for name, v in variants.items():
        hist = list(v["histories"].values())
        n = min(len(h) for h in hist)
        for ax, key in zip(axes, keys):
            curve = np.mean([[r[key] for r in h[:n]] for h in hist], axis=0)
            ax.plot(np.arange(1, n + 1), curve, label=name)
    for ax, title in zip(axes, titles):
        ax.set(xlabel="epoch", title=f"{title} (mean over seeds)")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs_dir")
    p.add_argument("--out", help="write the learning-curve figure here")
    p.add_argument("--csv", help="write the table here")
    args = p.parse_args(argv)
    variants = load(args.runs_dir)
    if not variants:
        raise SystemExit(f"no run with a results.json under {args.runs_dir!r}")
    table = rows(variants)
    print(markdown(table))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "variant",
                    "seeds",
                    "val_mean",
                    "val_std",
                    "test_mean",
                    "test_std",
                    "train_end_mean",
                    "epochs",
                    "s_per_epoch",
                ]
            )
            for r in table:
                w.writerow(
                    [
                        r["variant"],
                        r["seeds"],
                        *r["val"],
                        *r["test"],
                        r["train_end"][0],
                        r["epochs"],
                        r["s_per_epoch"],
                    ]
                )
    if args.out:
        plot(variants, args.out)


if __name__ == "__main__":
    main()
