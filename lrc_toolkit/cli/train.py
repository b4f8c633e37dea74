"""`lrc-toolkit train`: LrcSSM on a UEA data set or your own, with the paper's data
protocol, several split seeds, and a results table."""

import dataclasses
import json
import os
import sys
import time

from ._args import (
    add_data_arguments,
    add_solver_arguments,
    data_source,
    DEFAULT_SEEDS,
    discretisation_from_args,
    load_data,
    neuron_choice,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed,
    solver_from_args,
    source_name,
)


def add_train_parser(subparsers) -> None:
    from ..training import DEFAULT_PRESET, PRESETS, PROTOCOLS, SCHEDULES

    d = DEFAULT_PRESET
    p = subparsers.add_parser(
        "train",
        help="train LrcSSM on a UEA data set or your own, with the paper's protocol",
        description=(
            "Train LrcSSM (merge train/test, drop duplicates, permute with each seed, "
            "split 70/15/15; early stopping on validation accuracy; test accuracy at "
            "the best validation epoch). Settings: the data set's preset of the "
            "paper's Table 5 if it has one, else the CLI's defaults (shown below; "
            "they differ from `TrainConfig()`'s library defaults to be quick on a "
            "CPU); each option overrides them. Writes OUT/results.json, "
            "OUT/training_curve.png and OUT/seed_<s>/ with checkpoints and per-epoch "
            "metrics."
        ),
        formatter_class=argparse_formatter(),
    )
    p.add_argument("--out", required=True, help="output directory")
    add_data_arguments(p)
    p.add_argument(
        "--dt-blind",
        action="store_true",
        help="ignore the data's time stamps (uniform steps): the baseline of an "
        "irregular-sampling experiment",
    )
    p.add_argument(
        "--seeds",
        type=seed,
        nargs="+",
        default=list(DEFAULT_SEEDS),
        help="split seeds (the paper's: 2345 3456 4567 5678 6789; default: "
        "%(default)s)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="the paper's Table 5 settings of a data set (default: the data set's "
        "own, if it has one)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="fast",
        help="fast: early stopping on validation accuracy (patience below); paper: "
        "the reference's (<= 3000 epochs, patience 1000, ties improve, test "
        "accuracy of the last best epoch) (default: %(default)s)",
    )
    p.add_argument(
        "--neuron",
        default="lrc",
        help="a name from lrc_toolkit.models.NEURONS, or your own neuron as "
        "'package.module:factory' (called as factory(state_size, input_size, "
        "dtype=..., key=...)) (default: %(default)s)",
    )
    model = p.add_argument_group("model and training (override the preset)")
    model.add_argument(
        "--hidden", type=positive_int, help=f"hidden width H (default {d.hidden_size})"
    )
    model.add_argument(
        "--state",
        type=positive_int,
        help=f"liquid state size D (default {d.state_size})",
    )
    model.add_argument(
        "--blocks", type=positive_int, help=f"number of blocks (default {d.num_blocks})"
    )
    model.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate (default {d.train.learning_rate:g})",
    )
    model.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"sequences per step (default {d.train.batch_size})",
    )
    model.add_argument(
        "--epochs", type=positive_int, help=f"epoch cap (default {d.train.epochs})"
    )
    model.add_argument(
        "--patience",
        type=positive_int,
        help=f"epochs without improvement before stopping (default {d.train.patience})",
    )
    model.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="learning rate over the run: constant, or cosine decay to 0 over "
        f"--epochs (default {d.train.schedule})",
    )
    model.add_argument(
        "--warmup-epochs",
        type=non_negative_int,
        help="linear learning-rate warm-up from 0 over this many epochs (default "
        f"{d.train.warmup_epochs})",
    )
    model.add_argument(
        "--weight-decay",
        type=non_negative_float,
        help=f"AdamW's decoupled weight decay; 0: Adam (default {d.train.weight_decay:g})",
    )
    model.add_argument(
        "--time-budget",
        type=positive_float,
        help="seconds of training per seed; the run stops cleanly at an epoch "
        "boundary and can be continued with --resume (default: none)",
    )
    arch = p.add_argument_group(
        "architecture (the defaults are the toolkit's; the reference implementation "
        "uses --activation relu --init he_uniform --no-norm-affine --residual "
        "normalised)"
    )
    arch.add_argument(
        "--dt",
        type=positive_float,
        default=1.0,
        help="the liquid layers' step size for data without time stamps: smaller "
        "steps make the neurons integrate over more samples (default: %(default)s)",
    )
    arch.add_argument(
        "--activation",
        choices=("gelu", "relu"),
        default="gelu",
        help="(default: %(default)s)",
    )
    arch.add_argument(
        "--init",
        choices=("default", "he_uniform"),
        default="default",
        help="MLP weights (default: %(default)s)",
    )
    arch.add_argument(
        "--no-norm-affine",
        action="store_true",
        help="LayerNorms without learned scale and shift",
    )
    arch.add_argument(
        "--residual",
        choices=("input", "normalised"),
        default="input",
        help="what a block's MLP output is added to (default: %(default)s)",
    )
    add_solver_arguments(p)
    p.add_argument(
        "--baseline",
        choices=("minirocket",),
        help="also fit this baseline on every split and put it in the table",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the runs in OUT after a crash"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_train)


def argparse_formatter():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def resolve_preset(args, dataset_name):
    """The preset named by `--preset`, else the data set's own, else the CLI's
    defaults; then the protocol; then the command-line overrides."""
    from ..training import DEFAULT_PRESET, PRESETS

    name = args.preset or (dataset_name if dataset_name in PRESETS else None)
    preset = PRESETS[name] if name else DEFAULT_PRESET
    source = f"preset {name}" if name else "defaults"
    preset = preset.with_protocol(args.protocol).replace(
        learning_rate=args.lr,
        hidden_size=args.hidden,
        state_size=args.state,
        num_blocks=args.blocks,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        time_budget=args.time_budget,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
    )
    return preset, source


def _table(
    dataset: str,
    per_seed: dict,
    mean: float,
    std: float,
    baseline: dict | None = None,
    baseline_name: str | None = None,
) -> str:
    rows = [("LrcSSM", f"{100 * mean:.1f} ± {100 * std:.1f}")]
    if baseline is not None:
        rows.append(
            (
                {"minirocket": "MiniRocket"}.get(baseline_name, baseline_name),
                f"{100 * baseline['test_accuracy_mean']:.1f} ± "
                f"{100 * baseline['test_accuracy_std']:.1f}",
            )
        )
    first = max(len("model"), *(len(r[0]) for r in rows))
    width = max(len(dataset), *(len(r[1]) for r in rows))
    lines = [
        f"| {'model':<{first}} | {dataset:<{width}} |",
        f"|{'-' * (first + 2)}|{'-' * (width + 2)}|",
        *(f"| {m:<{first}} | {c:<{width}} |" for m, c in rows),
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
    for split_seed, history in histories.items():
        epochs = [h["epoch"] for h in history]
        line = ax_loss.plot(
            epochs,
            [h["train_loss"] for h in history],
            label=f"train, seed {split_seed}",
        )[0]
        ax_loss.plot(
            epochs,
            [h["val_loss"] for h in history],
            "--",
            color=line.get_color(),
            label=f"val, seed {split_seed}",
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

    from .._extras import require
    from .._stats import mean_std
    from ..models import LrcSSM
    from ..training import check_output_dir, fit
    from ..training._checkpoint import atomic_write_text

    # Everything is validated before any training starts (the curve's plot too).
    require("matplotlib", "The training-curve plot", "cli")
    source = data_source(args)
    preset, preset_source = resolve_preset(args, source.get("dataset"))
    neuron, neurons = neuron_choice(args.neuron)
    solver, discretisation = solver_from_args(args), discretisation_from_args(args)
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds has repeated values: {args.seeds}.")
    out = check_output_dir(args.out)
    seed_dirs = {s: os.path.join(out, f"seed_{s}") for s in args.seeds}
    if not args.resume:
        for d in seed_dirs.values():
            if os.path.exists(os.path.join(d, "last.eqx")) or os.path.exists(
                os.path.join(d, "prev.eqx")
            ):
                raise ValueError(
                    f"{d!r} already holds a training run. Pass --resume to continue "
                    "it, or choose another --out."
                )
    name = source_name(source)
    datasets = {args.seeds[0]: load_data(source, args.seeds[0], args.data_dir)}
    first = datasets[args.seeds[0]]
    if first.num_classes < 2:
        raise ValueError(
            f"{name!r} is not a classification data set with at least two classes; "
            "`lrc-toolkit train` trains classifiers."
        )

    def model_for(ds, s):
        return LrcSSM(
            ds.input_size,
            ds.num_classes,
            **preset.model_kwargs(),
            neuron=neuron,
            neurons=neurons,
            solver=solver,
            discretisation=discretisation,
            activation=args.activation,
            init=args.init,
            norm_affine=not args.no_norm_affine,
            residual=args.residual,
            dt=args.dt,
            dtype=jnp.float32,
            key=jr.key(s),
        )

    settings = {
        **preset.to_dict(),
        "source": preset_source,
        "protocol": args.protocol,
        "dt": args.dt,
        "activation": args.activation,
        "init": args.init,
        "norm_affine": not args.no_norm_affine,
        "residual": args.residual,
    }
    print(
        f"LrcSSM on {name} ({first.input_size} channels, length {first.max_length}, "
        f"{first.num_classes} classes; train/val/test {len(first.train)}/"
        f"{len(first.val)}/{len(first.test)}"
        + (
            f"; {100 * source['drop_rate']:.0f} % of samples dropped"
            if source["drop_rate"]
            else ""
        )
        + f"); {preset_source}, {args.protocol} protocol: "
        f"H={preset.hidden_size} D={preset.state_size} blocks={preset.num_blocks} "
        f"lr={preset.train.learning_rate} batch={preset.train.batch_size} "
        f"epochs<={preset.train.epochs} patience={preset.train.patience} "
        f"dt={args.dt:g} solver={args.solver} neuron={neuron}",
        file=sys.stderr,
    )
    per_seed, histories = {}, {}
    for s in args.seeds:
        ds = datasets.pop(s, None) or load_data(source, s, args.data_dir)
        splits = [ds.train, ds.val, ds.test]
        if args.dt_blind:
            splits = [dataclasses.replace(split, times=None) for split in splits]
        start = time.perf_counter()
        result = fit(
            model_for(ds, s),
            *splits,
            config=dataclasses.replace(preset.train, seed=s),
            out_dir=seed_dirs[s],
            resume=args.resume,
            progress=not args.no_progress,
            metadata={
                **source,
                "split_seed": s,
                "classes": list(ds.classes),
                "neuron": neuron,
                "dt_blind": args.dt_blind,
            },
        )
        seconds = time.perf_counter() - start
        per_seed[s] = {
            "test_accuracy": result.test_metrics["accuracy"],
            "val_accuracy": result.val_metrics["accuracy"],
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stop_reason": result.stop_reason,
            "train_seconds": seconds,
        }
        if args.baseline == "minirocket":
            from ..baselines import minirocket

            per_seed[s]["minirocket"] = minirocket(*splits[::2], val=splits[1], seed=s)
        histories[s] = result.history
        print(
            f"seed {s}: test accuracy {result.test_metrics['accuracy']:.4f} (best "
            f"epoch {result.best_epoch} of {result.epochs_run}, {result.stop_reason}, "
            f"{seconds:.1f} s)"
            + (
                f"; MiniRocket {per_seed[s]['minirocket']['test_accuracy']:.4f}"
                if args.baseline
                else ""
            ),
            file=sys.stderr,
        )
    mean, std = mean_std([r["test_accuracy"] for r in per_seed.values()])
    results = {
        "dataset": name,
        "data_source": source,
        "model": "LrcSSM",
        "solver": args.solver,
        "neuron": neuron,
        "dt_blind": args.dt_blind,
        "settings": settings,
        "seeds": list(args.seeds),
        "per_seed": {str(s): r for s, r in per_seed.items()},
        "test_accuracy": mean,
        "test_accuracy_mean": mean,
        "test_accuracy_std": std,
    }
    if args.baseline:
        b_mean, b_std = mean_std(
            [r[args.baseline]["test_accuracy"] for r in per_seed.values()]
        )
        results[args.baseline] = {
            "test_accuracy_mean": b_mean,
            "test_accuracy_std": b_std,
        }
    atomic_write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2))
    _plot(os.path.join(out, "training_curve.png"), histories)
    print(_table(name, per_seed, mean, std, results.get(args.baseline), args.baseline))
    return 0
