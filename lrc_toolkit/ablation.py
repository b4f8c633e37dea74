"""The paper's ablations (Tables 2 and 8–11): LrcSSM with other liquid or gated
neurons, trained and tested with one fixed setup over several data splits.

```python
from lrc_toolkit.ablation import run_ablation, format_table
results = run_ablation("BasicMotions", ["lrc", "stc", "gru"], seeds=[2345, 3456])
print(format_table(results))
```
"""

import csv
import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._neurons.registry import NEURONS
from ._solve.newton import ParallelNewton
from ._stats import mean_std
from .training._config import ABLATION_PRESET, Preset


@dataclasses.dataclass(frozen=True)
class Variant:
    """One column of an ablation table.

    **Fields:**

    - `label`: the column title (the paper's name for it).
    - `neuron`: a name from `lrc_toolkit.models.NEURONS`.
    - `method`: the parallel solver's method (`None`: Newton for diagonal neurons,
        full-Jacobian Newton for dense ones).
    """

    label: str
    neuron: str
    method: str | None = None


# The paper's column titles (Tables 2 and 8-11); other neurons are titled by name.
_LABELS = {
    "lrc": "LrcSSM",
    "lrc-symmetric": "LrcSSM (sym. elastance)",
    "stc": "StcSSM",
    "gru": "GruSSM",
    "mgu": "MguSSM",
    "lstm": "LstmSSM",
    "dense-lrc": "dense-Jac. LRC",
    "lrc-au-bxu": "A(u),b(x,u)",
    "lrc-au-bu": "A(u),b(u)",
    "complex-lrc-gk": "g,k ∈ C",
    "complex-lrc-gka": "+ a ∈ C",
    "complex-lrc": "+ b ∈ C",
}

# One variant per neuron of `NEURONS`. Table 9 solves the dense-Jacobian LRC by
# quasi-Newton (the diagonal of the full Jacobian), and also by exact
# full-Jacobian Newton (O(T D^3)), the one variant that is not a neuron's name.
VARIANTS: dict[str, Variant] = {
    name: Variant(
        _LABELS.get(name, name), name, "quasi" if name == "dense-lrc" else None
    )
    for name in NEURONS
}
VARIANTS["dense-lrc-newton"] = Variant("dense-Jac. LRC (Newton)", "dense-lrc", "dense")


def newton_iterations(
    model, x: Float[ArrayLike, "T P"], mask: Bool[ArrayLike, " T"] | None = None
) -> Int[Array, " L"]:
    """The Newton iterations of each block's parallel solve on one sequence.

    Reads `Solution.iterations` from
    [`LrcSSM.solutions`][lrc_toolkit.models.LrcSSM.solutions] (0 for a
    non-Newton solver). Batch with `jax.vmap`.

    **Arguments:**

    - `model`: an `LrcSSM`.
    - `x`, `mask`: one sequence, as for the model.

    **Returns:**

    An integer array with one count per block.
    """
    return jnp.stack([sol.iterations for sol in model.solutions(x, mask)])


def run_ablation(
    dataset: str,
    variants: Sequence[str],
    seeds: Sequence[int],
    *,
    setup: Preset = ABLATION_PRESET,
    out_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log=print,
) -> dict[str, Any]:
    """Train and test LrcSSM with each variant's neuron on each split seed.

    Each run uses the data protocol of [`load_uea`][lrc_toolkit.data.load_uea]
    (split seed `s`), the fixed `setup`, [`fit`][lrc_toolkit.training.fit] with
    early stopping on validation accuracy, and reports the test accuracy at the best
    validation epoch, and the mean Newton iterations per block of the parallel
    solver on the test set.

    **Arguments:**

    - `dataset`: a UEA data set name.
    - `variants`: keys of `lrc_toolkit.ablation.VARIANTS`.
    - `seeds`: split seeds (the paper: 2345, 3456, 4567, 5678, 6789).
    - `setup`: a [`Preset`][lrc_toolkit.training.Preset], default
        [`ABLATION_PRESET`][lrc_toolkit.training.ABLATION_PRESET] (the paper's fixed
        setup: 6 blocks, state 64, hidden 64, lr 1e-4).
    - `out_dir`: where each run writes its checkpoints (`<variant>/seed_<s>/`).
    - `data_dir`: where the UEA data lives (default: `load_uea`'s).
    - `progress`: show per-run progress bars.
    - `log`: called with one line per finished run.

    **Returns:**

    A dict with `dataset`, `setup`, `variants`, `runs` (one dict per variant and
    seed) and `summary` (per variant: label, mean and std of the test accuracy,
    mean Newton iterations).
    """
    from .data import load_uea
    from .models import LrcSSM
    from .training import fit

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(
            f"Unknown variants {unknown}; choose from {', '.join(VARIANTS)}."
        )
    if not variants or not seeds:
        raise ValueError("Give at least one variant and one seed.")
    if len(set(variants)) != len(variants) or len(set(seeds)) != len(seeds):
        raise ValueError("`variants` and `seeds` must not repeat.")
    datasets = {s: load_uea(dataset, seed=s, data_dir=data_dir) for s in seeds}
    runs = []
    for name in variants:
        variant = VARIANTS[name]
        for seed in seeds:
            ds = datasets[seed]
            model = LrcSSM(
                ds.input_size,
                ds.num_classes,
                **setup.model_kwargs(),
                neuron=variant.neuron,
                solver=ParallelNewton(method=variant.method),
                dtype=jnp.float32,
                key=jr.key(seed),
            )
            config = dataclasses.replace(setup.train, seed=seed)
            start = time.perf_counter()
            result = fit(
                model,
                ds.train,
                ds.val,
                ds.test,
                config=config,
                out_dir=None
                if out_dir is None
                else os.path.join(out_dir, name, f"seed_{seed}"),
                progress=progress,
                metadata={"dataset": dataset, "split_seed": seed, "variant": name},
            )
            seconds = time.perf_counter() - start
            counts = eqx.filter_jit(jax.vmap(newton_iterations, in_axes=(None, 0, 0)))(
                result.model, ds.test.x, ds.test.mask
            )
            run = {
                "variant": name,
                "label": variant.label,
                "seed": seed,
                "test_accuracy": float(result.test_metrics["accuracy"]),
                "val_accuracy": float(result.val_metrics["accuracy"]),
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "newton_iterations": float(np.mean(np.asarray(counts))),
                "seconds": seconds,
            }
            runs.append(run)
            log(
                f"{name} seed {seed}: test accuracy {run['test_accuracy']:.4f}, "
                f"{run['newton_iterations']:.1f} Newton iterations per block, "
                f"{seconds:.1f} s"
            )
    summary = {}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        mean, std = mean_std([r["test_accuracy"] for r in mine])
        summary[name] = {
            "label": VARIANTS[name].label,
            "test_accuracy_mean": mean,
            "test_accuracy_std": std,
            "newton_iterations": sum(r["newton_iterations"] for r in mine) / len(mine),
        }
    return {
        "dataset": dataset,
        "setup": setup.to_dict(),
        "variants": list(variants),
        "seeds": list(seeds),
        "runs": runs,
        "summary": summary,
    }


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table like the paper's: one row for the data set, one column per
    variant, test accuracy in % as mean ± std over the seeds; a second row gives
    the mean Newton iterations per block."""
    summary = results["summary"]
    names = results["variants"]
    heads = ["dataset"] + [summary[n]["label"] for n in names]
    acc = [results["dataset"]] + [
        f"{100 * summary[n]['test_accuracy_mean']:.1f} ± "
        f"{100 * summary[n]['test_accuracy_std']:.1f}"
        for n in names
    ]
    its = ["Newton its/block"] + [
        f"{summary[n]['newton_iterations']:.1f}" for n in names
    ]
    widths = [max(len(a), len(b), len(c)) for a, b, c in zip(heads, acc, its)]
    row = lambda cells: (
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    )
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([row(heads), rule, row(acc), row(its)])


def write_csv(results: dict[str, Any], path: str | os.PathLike) -> None:
    """One row per variant and seed, then one summary row per variant (`seed` =
    `mean`/`std`)."""
    fields = [
        "dataset",
        "variant",
        "label",
        "seed",
        "test_accuracy",
        "val_accuracy",
        "best_epoch",
        "epochs_run",
        "newton_iterations",
        "seconds",
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for run in results["runs"]:
            writer.writerow({"dataset": results["dataset"], **run})
        for name, s in results["summary"].items():
            for stat in ("mean", "std"):
                writer.writerow(
                    {
                        "dataset": results["dataset"],
                        "variant": name,
                        "label": s["label"],
                        "seed": stat,
                        "test_accuracy": s[f"test_accuracy_{stat}"],
                        "newton_iterations": s["newton_iterations"]
                        if stat == "mean"
                        else "",
                    }
                )
