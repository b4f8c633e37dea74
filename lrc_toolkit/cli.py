"""The `lrc-toolkit` command line.

Each subcommand is added by one `add_<name>_parser(subparsers)` function listed in
`SUBCOMMANDS`; a new subcommand (e.g. `compare`, `bench`, `ablate`) is one such
function that sets `func=` to the function that runs it, plus one entry in that
list.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


DEFAULT_DATASET = "BasicMotions"
DEFAULT_SEEDS = (2345,)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError)


@dataclasses.dataclass(frozen=True)
class TrainDefaults:
    """The CLI's settings for a data set without a paper preset."""

    learning_rate: float = 3e-3
    hidden_size: int = 32
    state_size: int = 32
    num_blocks: int = 2
    batch_size: int = 8
    epochs: int = 60
    patience: int = 15


DEFAULTS = TrainDefaults()


# ------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a finite positive number, got {text}"
        )
    return value


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train LrcSSM on a UEA data set with the paper's protocol",
        description=(
            "Train LrcSSM on a UEA data set (merge train/test, drop duplicates, "
            "permute with each seed, split 70/15/15; early stopping on validation "
            "accuracy; test accuracy at the best validation epoch). Writes "
            "OUT/results.json, OUT/training_curve.png and OUT/seed_<s>/ with "
            "checkpoints and per-epoch metrics."
        ),
    )
    p.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"UEA data set name (default {DEFAULT_DATASET}, bundled: no download)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--preset",
        help="hyperparameters of the paper's Table 5 (a data set name); default: the "
        "data set's own preset if it has one, else the toolkit's defaults",
    )
    add_solver_arguments(p)
    p.add_argument(
        "--neuron", default="lrc", help="neuron name (lrc, stc, lrc-symmetric, ...)"
    )
    p.add_argument("--seeds", type=_seed, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=_positive_float, help="learning rate")
    p.add_argument("--hidden", type=_positive_int, help="hidden width H")
    p.add_argument("--state", type=_positive_int, help="liquid state size D")
    p.add_argument("--blocks", type=_positive_int, help="number of blocks")
    p.add_argument("--patience", type=_positive_int)
    p.add_argument("--data-dir", help="directory of downloaded UEA data sets")
    p.add_argument(
        "--resume", action="store_true", help="continue the runs in OUT after a crash"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_train)


_DISCRETISATIONS = ("euler", "semi-implicit", "implicit", "closed-form")


def add_solver_arguments(p) -> None:
    """The liquid layers' solver options (every option of the solver modules)."""
    g = p.add_argument_group("liquid-layer solver")
    g.add_argument(
        "--solver",
        choices=("parallel", "sequential", "ode", "auto"),
        default="parallel",
        help="parallel: Newton + parallel scan (the paper's); sequential: lax.scan; "
        "ode: Diffrax, one step per sample; auto: sequential on CPU, parallel on "
        "accelerators (default: %(default)s)",
    )
    g.add_argument(
        "--discretisation",
        choices=_DISCRETISATIONS,
        default=None,
        help="the step of the parallel/sequential solvers; 'implicit' (backward "
        "Euler) for stiff neurons (default: euler; closed-form for CfC neurons)",
    )
    g.add_argument(
        "--method",
        choices=("newton", "quasi", "dense"),
        help="parallel solver: Newton variant (default: newton for diagonal neurons, "
        "dense for dense ones)",
    )
    g.add_argument(
        "--max-iters",
        type=_positive_int,
        help="parallel solver: iteration limit (default: T)",
    )
    g.add_argument(
        "--rtol",
        type=_positive_float,
        help="parallel solver: relative tolerance (default 1e-5 in float32)",
    )
    g.add_argument(
        "--atol",
        type=_positive_float,
        help="parallel solver: absolute tolerance (default 1e-5 in float32)",
    )
    g.add_argument(
        "--damping",
        type=_positive_float,
        help="parallel solver: clip step Jacobians to this radius (damped Newton; "
        "default: exact Newton)",
    )
    g.add_argument(
        "--fallback",
        action="store_true",
        help="parallel solver: recompute a sequence whose Newton iteration failed "
        "with lax.scan",
    )
    g.add_argument(
        "--ode-solver",
        default="Euler",
        choices=("Euler", "Heun", "Midpoint", "Ralston", "Bosh3", "Tsit5", "Dopri5"),
        help="ode solver: the Diffrax solver (default: %(default)s, which reproduces "
        "the explicit-Euler recurrence)",
    )


def solver_from_args(args):
    """The solver module named by the `--solver ...` options."""
    import diffrax

    from . import Auto, ODE, ParallelNewton, Sequential

    if args.solver == "sequential":
        return Sequential()
    if args.solver == "auto":
        return Auto()
    if args.solver == "ode":
        return ODE(getattr(diffrax, args.ode_solver)())
    return ParallelNewton(
        method=args.method,
        rtol=args.rtol,
        atol=args.atol,
        max_iters=args.max_iters,
        damping=args.damping,
        fallback=Sequential() if args.fallback else None,
    )


def discretisation_from_args(args):
    """The discretisation named by `--discretisation`."""
    from . import Euler, ImplicitEuler, SemiImplicitEuler

    kinds = {
        "euler": Euler,
        "semi-implicit": SemiImplicitEuler,
        "implicit": ImplicitEuler,
    }
    return kinds[args.discretisation]()


def add_evaluate_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a data set split",
        description="Evaluate a checkpoint (best.eqx or last.eqx written by `train`).",
    )
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's")
    p.add_argument("--seed", type=_seed, help="split seed (default: the checkpoint's)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.set_defaults(func=run_evaluate)


from ._bench import add_bench_parser  # noqa: E402
from ._cli_ablate import add_ablate_parser  # noqa: E402
from ._cli_compare import add_compare_parser  # noqa: E402


SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_train_parser,
    add_evaluate_parser,
    add_compare_parser,
    add_ablate_parser,
    add_bench_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrc-toolkit",
        description="Liquid neural networks (LRC, LrcSSM) in JAX.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .training import CheckpointError

    try:
        return args.func(args) or 0
    except (*USER_ERRORS, CheckpointError) as e:
        print(f"lrc-toolkit {args.command}: error: {e}", file=sys.stderr)
        return 2


# -------------------------------------------------------------------------- train


def _resolve_settings(args) -> dict:
    from .models import PRESETS

    if args.preset is not None:
        if args.preset not in PRESETS:
            raise ValueError(
                f"Unknown preset {args.preset!r}; the presets (the paper's Table 5) "
                f"are {', '.join(PRESETS)}."
            )
        p = PRESETS[args.preset]
        base, source = (
            dataclasses.replace(
                DEFAULTS,
                learning_rate=p.learning_rate,
                hidden_size=p.hidden_size,
                state_size=p.state_size,
                num_blocks=p.num_blocks,
                batch_size=p.batch_size,
            ),
            f"preset {args.preset}",
        )
    elif args.dataset in PRESETS:
        p = PRESETS[args.dataset]
        base, source = (
            dataclasses.replace(
                DEFAULTS,
                learning_rate=p.learning_rate,
                hidden_size=p.hidden_size,
                state_size=p.state_size,
                num_blocks=p.num_blocks,
                batch_size=p.batch_size,
            ),
            f"preset {args.dataset}",
        )
    else:
        base, source = DEFAULTS, "defaults"
    settings = dataclasses.asdict(base)
    for key, arg in (
        ("learning_rate", "lr"),
        ("hidden_size", "hidden"),
        ("state_size", "state"),
        ("num_blocks", "blocks"),
        ("batch_size", "batch_size"),
        ("epochs", "epochs"),
        ("patience", "patience"),
    ):
        value = getattr(args, arg)
        if value is not None:
            settings[key] = value
    settings["source"] = source
    return settings


def _table(dataset: str, per_seed: dict, mean: float, std: float) -> str:
    cell = f"{100 * mean:.1f} ± {100 * std:.1f}"
    width = max(len(dataset), len(cell))
    lines = [
        f"| model  | {dataset:<{width}} |",
        f"|--------|{'-' * (width + 2)}|",
        f"| LrcSSM | {cell:<{width}} |",
        "",
        "per seed: "
        + ", ".join(
            f"{s}: {100 * r['test_accuracy']:.1f}% ({r['train_seconds']:.0f} s)"
            for s, r in per_seed.items()
        ),
    ]
    return "\n".join(lines)


def _plot(path: str, histories: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for seed, history in histories.items():
        epochs = [h["epoch"] for h in history]
        line = ax_loss.plot(
            epochs, [h["train_loss"] for h in history], label=f"train, seed {seed}"
        )[0]
        ax_loss.plot(
            epochs,
            [h["val_loss"] for h in history],
            "--",
            color=line.get_color(),
            label=f"val, seed {seed}",
        )
        ax_acc.plot(
            epochs, [h["train_accuracy"] for h in history], color=line.get_color()
        )
        ax_acc.plot(
            epochs, [h["val_accuracy"] for h in history], "--", color=line.get_color()
        )
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(
        xlabel="epoch",
        ylabel="accuracy",
        title="accuracy (solid: train, dashed: val)",
        ylim=(0, 1.02),
    )
    ax_loss.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_train(args) -> int:
    import jax.numpy as jnp
    import jax.random as jr

    from .data import load_uea
    from .models import LrcSSM, NEURONS
    from .training import check_output_dir, fit, TrainConfig
    from .training._checkpoint import atomic_write_text

    # Everything is validated before any training starts.
    settings = _resolve_settings(args)
    if args.neuron not in NEURONS:
        raise ValueError(
            f"Unknown --neuron {args.neuron!r}; choose one of {', '.join(NEURONS)}."
        )
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds has repeated values: {args.seeds}.")
    configs = {
        seed: TrainConfig(
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            patience=settings["patience"],
            seed=seed,
        )
        for seed in args.seeds
    }
    out = check_output_dir(args.out)
    seed_dirs = {seed: os.path.join(out, f"seed_{seed}") for seed in args.seeds}
    if not args.resume:
        for d in seed_dirs.values():
            if os.path.exists(os.path.join(d, "last.eqx")) or os.path.exists(
                os.path.join(d, "prev.eqx")
            ):
                raise ValueError(
                    f"{d!r} already holds a training run. Pass --resume to continue "
                    "it, or choose another --out."
                )
    datasets = {
        args.seeds[0]: load_uea(
            args.dataset, seed=args.seeds[0], data_dir=args.data_dir
        )
    }
    first = datasets[args.seeds[0]]
    if first.num_classes < 2:
        raise ValueError(
            f"{args.dataset!r} is not a classification data set with at least two "
            "classes; `lrc-toolkit train` trains classifiers."
        )

    def model_for(ds, seed):
        return LrcSSM(
            ds.input_size,
            ds.num_classes,
            hidden_size=settings["hidden_size"],
            state_size=settings["state_size"],
            num_blocks=settings["num_blocks"],
            neuron=args.neuron,
            solver=solver_from_args(args),
            discretisation=discretisation_from_args(args),
            dtype=jnp.float32,
            key=jr.key(seed),
        )

    print(
        f"LrcSSM on {args.dataset} ({first.input_size} channels, length "
        f"{first.max_length}, {first.num_classes} classes; train/val/test "
        f"{len(first.train)}/{len(first.val)}/{len(first.test)}); "
        f"{settings['source']}: H={settings['hidden_size']} D={settings['state_size']} "
        f"blocks={settings['num_blocks']} lr={settings['learning_rate']} "
        f"batch={settings['batch_size']} epochs<={settings['epochs']} "
        f"patience={settings['patience']} solver={args.solver}",
        file=sys.stderr,
    )
    per_seed, histories = {}, {}
    for seed in args.seeds:
        ds = datasets.pop(seed, None) or load_uea(
            args.dataset, seed=seed, data_dir=args.data_dir
        )
        start = time.perf_counter()
        result = fit(
            model_for(ds, seed),
            ds.train,
            ds.val,
            ds.test,
            config=configs[seed],
            out_dir=seed_dirs[seed],
            resume=args.resume,
            progress=not args.no_progress,
            metadata={
                "dataset": args.dataset,
                "split_seed": seed,
                "classes": list(ds.classes),
            },
        )
        seconds = time.perf_counter() - start
        per_seed[seed] = {
            "test_accuracy": result.test_metrics["accuracy"],
            "val_accuracy": result.val_metrics["accuracy"],
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stop_reason": result.stop_reason,
            "train_seconds": seconds,
        }
        histories[seed] = result.history
        print(
            f"seed {seed}: test accuracy {result.test_metrics['accuracy']:.4f} (best "
            f"epoch {result.best_epoch} of {result.epochs_run}, {seconds:.1f} s)",
            file=sys.stderr,
        )
    accs = [r["test_accuracy"] for r in per_seed.values()]
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs))
    results = {
        "dataset": args.dataset,
        "model": "LrcSSM",
        "solver": args.solver,
        "neuron": args.neuron,
        "settings": settings,
        "seeds": list(args.seeds),
        "per_seed": {str(s): r for s, r in per_seed.items()},
        "test_accuracy": mean,
        "test_accuracy_mean": mean,
        "test_accuracy_std": std,
    }
    atomic_write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2))
    _plot(os.path.join(out, "training_curve.png"), histories)
    print(_table(args.dataset, per_seed, mean, std))
    return 0


# ----------------------------------------------------------------------- evaluate


def run_evaluate(args) -> int:
    from .data import load_uea
    from .training import evaluate, load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    saved = meta.get("metadata", {})
    dataset = args.dataset or saved.get("dataset")
    if dataset is None:
        raise ValueError("The checkpoint does not name its data set: pass --dataset.")
    seed = args.seed if args.seed is not None else saved.get("split_seed", 2345)
    ds = load_uea(dataset, seed=seed, data_dir=args.data_dir)
    if ds.input_size != model.input_size:
        raise ValueError(
            f"{dataset!r} has {ds.input_size} channels but the checkpoint's model takes "
            f"{model.input_size}: it was trained on another data set "
            f"({saved.get('dataset', 'unknown')!r})."
        )
    if ds.num_classes != model.num_outputs:
        raise ValueError(
            f"{dataset!r} has {ds.num_classes} classes but the checkpoint's model "
            f"predicts {model.num_outputs}: it was trained on another data set "
            f"({saved.get('dataset', 'unknown')!r})."
        )
    if "classes" in saved and list(saved["classes"]) != list(ds.classes):
        raise ValueError(
            f"The class names of {dataset!r} ({list(ds.classes)}) differ from those "
            f"the checkpoint was trained with ({saved['classes']})."
        )
    metrics = evaluate(model, getattr(ds, args.split), batch_size=args.batch_size)
    report = {
        "checkpoint": os.fspath(args.checkpoint),
        "dataset": dataset,
        "split": args.split,
        "split_seed": seed,
        **metrics,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
