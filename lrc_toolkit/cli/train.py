"""`lrc-toolkit train`: LrcSSM on a UEA data set or your own, with the paper's data
protocol, several split seeds, and a results table."""

import dataclasses
import json
import os
import sys
import time

from ._args import (
    add_data_arguments,
    add_setup_arguments,
    add_solver_arguments,
    data_source,
    DEFAULT_SEEDS,
    discretisation_from_args,
    load_data,
    neuron_choice,
    positive_float,
    positive_int,
    seed,
    setup_overrides,
    solver_from_args,
    source_name,
)


def add_train_parser(subparsers) -> None:
    from ..models._arguments import RESIDUALS
    from ..models._mlp import ACTIVATIONS, INITS
    from ..training import DEFAULT_PRESET, PRESETS, PROTOCOLS

    d = DEFAULT_PRESET
    p = subparsers.add_parser(
        "train",
        help="train LrcSSM on a UEA data set or your own, with the paper's protocol",
        description=(
            "Train LrcSSM (merge train/test, drop duplicates, permute with each seed, "
            "split 70/15/15; early stopping on validation accuracy; test accuracy at "
            "the best validation epoch). With --task regress or forecast: MSE and "
            "MAE instead of accuracy (forecast: windows split chronologically). "
            "Settings: the data set's preset of the "
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
    task = p.add_argument_group(
        "task (regress and forecast read --data FILE.npz; see the docs' 'Regression "
        "and forecasting')"
    )
    task.add_argument(
        "--task",
        choices=tuple(TASKS),
        default="classify",
        help="classify: integer or string labels y (N,); regress: float targets y "
        "(N,), (N, d) or (N, T, d) (per step); forecast: the next --horizon steps "
        "of the series x (N, T, C) or (T, C), no y needed (default: %(default)s)",
    )
    task.add_argument(
        "--readout",
        choices=("mean", "last"),
        help="how a model with one output per series pools its per-step outputs: "
        "mean over the steps or the last step (default: mean; last for forecast; "
        "per-step targets always get per-step outputs)",
    )
    task.add_argument(
        "--raw-targets",
        action="store_true",
        help="regress: train on the targets as they are (default: standardised "
        "with the mean and std of each seed's training split, so that the MSE is "
        "in units of the training targets' variance: predicting the mean scores "
        "about 1)",
    )
    task.add_argument(
        "--horizon",
        type=positive_int,
        help="forecast: the number of steps to forecast (required)",
    )
    task.add_argument(
        "--window",
        type=positive_int,
        help="forecast: the number of past steps each forecast sees (default: 4 "
        "horizons, at most half of the training part)",
    )
    task.add_argument(
        "--relative",
        action="store_true",
        help="forecast: inputs and targets relative to each window's last value "
        "(the model forecasts changes, not levels: for trending series)",
    )
    task.add_argument(
        "--season",
        type=positive_int,
        help="forecast with --baseline naive: also the seasonal naive forecast "
        "with this season length (e.g. 12 for monthly data)",
    )
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
    add_setup_arguments(
        p.add_argument_group("model and training (override the preset)"), d
    )
    arch = p.add_argument_group(
        "architecture (the defaults are the toolkit's; the reference implementation "
        "uses --activation relu --no-norm-affine)"
    )
    arch.add_argument(
        "--dt",
        type=positive_float,
        default=_model_default("dt"),
        help="the liquid layers' step size for data without time stamps: smaller "
        "steps make the neurons integrate over more samples (default: %(default)s)",
    )
    time_scales = _model_default("time_scales")
    arch.add_argument(
        "--time-scales",
        nargs="+",
        metavar="LOW HIGH | none",
        help="learned time scales of the liquid layers: half of each layer's neurons "
        "start at HIGH, the others log-uniform over [LOW, HIGH] (memories of about "
        "1 to 1/(LOW dt) samples); 'none': every neuron steps by --dt, as in 0.2 "
        "and the paper (default: "
        + (" ".join(f"{v:g}" for v in time_scales) if time_scales else "none")
        + ")",
    )
    arch.add_argument(
        "--neuron-init",
        metavar="NAME",
        help="initialisation of a named neuron: for the LRC family (complex and "
        "dense too) 'responsive' "
        "(default: the state follows its input from the first step) or "
        "'reference' (the paper's); other neurons: their own options",
    )
    arch.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default=_model_default("activation"),
        help="(default: %(default)s)",
    )
    arch.add_argument(
        "--init",
        choices=tuple(INITS),
        default=_model_default("init"),
        help="MLP weights (default: %(default)s)",
    )
    arch.add_argument(
        "--no-norm-affine",
        action="store_true",
        help="LayerNorms without learned scale and shift",
    )
    arch.add_argument(
        "--residual",
        choices=RESIDUALS,
        default=_model_default("residual"),
        help="what a block's MLP output is added to (default: %(default)s)",
    )
    add_solver_arguments(p)
    p.add_argument(
        "--baseline",
        choices=("minirocket", "naive"),
        help="also fit this baseline on every split and put it in the table: "
        "minirocket (aeon's MiniRocket classifier, or regressor for --task "
        "regress); naive (--task forecast: the last value, and the seasonal naive "
        "forecast with --season)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the runs in OUT after a crash"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_train)


# The command line's task names -> the library's.
TASKS = {"classify": "classification", "regress": "regression", "forecast": "forecast"}
_BASELINE_NAMES = {
    "training_mean": "training mean",
    "minirocket": "MiniRocket",
    "naive": "naive (last value)",
    "seasonal_naive": "seasonal naive",
}


def _model_default(name: str):
    """The default of an `LrcSSM` argument (written once, in its signature)."""
    import inspect

    from ..models import LrcSSM

    return inspect.signature(LrcSSM.__init__).parameters[name].default


def time_scales_from_args(values):
    """`--time-scales`: `None` (the model's default), 'none', or LOW HIGH."""
    if values is None:
        return _model_default("time_scales")
    if len(values) == 1 and values[0].lower() == "none":
        return None
    try:
        low, high = (float(v) for v in values)
    except ValueError:
        raise ValueError(
            f"--time-scales takes LOW HIGH (two numbers) or 'none', got {values}."
        ) from None
    if not 0 < low <= high:
        raise ValueError(f"--time-scales needs 0 < LOW <= HIGH, got {low:g} {high:g}.")
    return (low, high)


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
    preset = preset.with_protocol(args.protocol).replace(**setup_overrides(args))
    return preset, source


def _markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[k]) for r in (header, *rows)) for k in range(len(header))]

    def line(cells):
        return "| " + " | ".join(f"{c:<{w}}" for c, w in zip(cells, widths)) + " |"

    return [
        line(header),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(line(r) for r in rows),
    ]


def _table(
    dataset: str,
    per_seed: dict,
    mean: float,
    std: float,
    baseline: dict | None = None,
    baseline_name: str | None = None,
) -> str:
    """The classification table: test accuracy (mean ± std over the seeds)."""
    rows = [("LrcSSM", f"{100 * mean:.1f} ± {100 * std:.1f}")]
    if baseline is not None:
        rows.append(
            (
                _BASELINE_NAMES.get(baseline_name, baseline_name),
                f"{100 * baseline['test_accuracy_mean']:.1f} ± "
                f"{100 * baseline['test_accuracy_std']:.1f}",
            )
        )
    lines = [
        *_markdown(("model", dataset), rows),
        "",
        "per seed: "
        + ", ".join(
            f"{s}: {100 * r['test_accuracy']:.1f}% ({r['train_seconds']:.0f} s)"
            for s, r in per_seed.items()
        ),
    ]
    return "\n".join(lines)


def _error_table(dataset: str, results: dict, baselines: list[str]) -> str:
    """The regression / forecasting table: test MSE and MAE (mean ± std over the
    seeds) of LrcSSM and of each baseline."""

    def cell(mean, std):
        # A deterministic baseline's spread is rounding noise: show it as 0.
        spread = "0" if std <= 1e-9 * max(abs(mean), 1.0) else f"{std:.2g}"
        return f"{mean:.4g} ± {spread}"

    def cells(r):
        return (
            cell(r["test_mse_mean"], r["test_mse_std"]),
            cell(r["test_mae_mean"], r["test_mae_std"]),
        )

    rows = [("LrcSSM", *cells(results))]
    rows += [(_BASELINE_NAMES.get(b, b), *cells(results[b])) for b in baselines]
    lines = [
        *_markdown(("model", f"{dataset}: test MSE", "test MAE"), rows),
        "",
        "per seed: "
        + ", ".join(
            f"{s}: MSE {r['test_mse']:.4g}, MAE {r['test_mae']:.4g} "
            f"({r['train_seconds']:.0f} s)"
            for s, r in results["per_seed"].items()
        ),
        {
            "standardised": "Errors in units of the training split's target std "
            "(predicting the training mean scores an MSE of about 1).",
            "normalised windows": "Errors in units of the training part's std.",
            "raw": "Errors in the targets' own units (--raw-targets).",
        }[results["targets"]],
    ]
    return "\n".join(lines)


def _plot(path: str, histories: dict, regression: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, label = ("mae", "MAE") if regression else ("accuracy", "accuracy")
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
            epochs, [h[f"train_{metric}"] for h in history], color=line.get_color()
        )
        ax_acc.plot(
            epochs, [h[f"val_{metric}"] for h in history], "--", color=line.get_color()
        )
    if regression:
        ax_loss.set(xlabel="epoch", ylabel="MSE", title="loss (MSE)")
        ax_acc.set(
            xlabel="epoch", ylabel=label, title=f"{label} (solid: train, dashed: val)"
        )
    else:
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


def _check_task_options(args) -> str:
    """The library's task for `--task`, after refusing options that do not belong
    to it (before anything is loaded or written)."""
    task = TASKS[args.task]
    forecast_only = [
        name
        for name in ("horizon", "window", "relative", "season")
        if getattr(args, name)
    ]
    if task != "forecast" and forecast_only:
        raise ValueError(
            f"--{forecast_only[0]} is an option of --task forecast, not --task "
            f"{args.task}."
        )
    if args.raw_targets and task != "regression":
        raise ValueError("--raw-targets is an option of --task regress.")
    if task == "forecast" and args.horizon is None:
        raise ValueError(
            "--task forecast needs --horizon H, the number of steps to forecast."
        )
    if args.season and args.baseline != "naive":
        raise ValueError(
            "--season is for the seasonal naive forecast: add --baseline naive."
        )
    if args.baseline == "naive" and task != "forecast":
        raise ValueError(
            "--baseline naive is a forecasting baseline (--task forecast)."
        )
    if args.baseline == "minirocket" and task == "forecast":
        raise ValueError(
            "--baseline minirocket is for --task classify or regress; forecasts are "
            "compared with --baseline naive."
        )
    if task != "classification":
        if args.data is None:
            raise ValueError(
                f"--task {args.task} needs your own data: --data FILE.npz (the UEA "
                "data sets are classification data sets)."
            )
        if task == "forecast" and args.drop_rate:
            raise ValueError(
                "--drop-rate is not for --task forecast: forecasting windows are cut "
                "from regularly sampled series."
            )
    return task


def _load(source, split_seed, data_dir, task):
    """`load_data`, with a hint in the command line's terms when classification
    labels look like regression targets."""
    try:
        return load_data(source, split_seed, data_dir)
    except ValueError as e:
        if task == "classification" and "look like regression targets" in str(e):
            raise ValueError(f"{e} On the command line: --task regress.") from None
        raise


def _num_outputs(ds, task: str) -> int:
    if task == "classification":
        return ds.num_classes
    y = ds.train.y
    return 1 if y.ndim == 1 else int(y.shape[-1])


def _readout(ds, task: str, args) -> str | None:
    if task == "classification":
        return args.readout  # None: the model's default (mean)
    if ds.train.y.ndim == 3:
        if args.readout is not None:
            raise ValueError(
                f"--readout {args.readout}: the targets are per step (shape "
                f"{ds.train.y.shape[1:]} per split row), so the model gives one "
                "output per step; drop --readout, or give one target per series."
            )
        return "per_step"
    return args.readout or ("last" if task == "forecast" else "mean")


def _channels(ds) -> str:
    return f"{ds.input_size} channel" + ("s" if ds.input_size != 1 else "")


def standardise_targets(ds):
    """`ds` with its regression targets shifted and scaled by the mean and
    (population) std of the training split's targets, per output (over the real
    steps, for per-step targets); and `(mean, std)`. Padded per-step targets stay
    zero."""
    import numpy as np

    def values(split):
        y = np.asarray(split.y, np.float64)
        return y[split.mask] if y.ndim == 3 else y.reshape(len(split), -1)

    train = values(ds.train)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def scaled(split):
        y = np.asarray(split.y, np.float64)
        if y.ndim == 3:
            z = np.where(split.mask[:, :, None], (y - mean) / std, 0.0)
        else:
            z = ((y.reshape(len(split), -1) - mean) / std).reshape(y.shape)
        return dataclasses.replace(split, y=z.astype(np.float32))

    out = dataclasses.replace(
        ds, train=scaled(ds.train), val=scaled(ds.val), test=scaled(ds.test)
    )
    return out, (mean, std)


def _describe(ds, task: str, source: dict) -> str:
    sizes = f"{len(ds.train)}/{len(ds.val)}/{len(ds.test)}"
    if task == "forecast":
        return (
            f"{_channels(ds)}; forecasting {source['horizon']} steps from "
            f"windows of {source['window']}"
            + (", relative to their last value" if source["relative"] else "")
            + f"; train/val/test windows {sizes}, chronological"
        )
    what = (
        f"{ds.num_classes} classes"
        if task == "classification"
        else (
            f"regression, {_num_outputs(ds, task)} target(s) "
            + ("per step" if ds.train.y.ndim == 3 else "per series")
        )
    )
    return (
        f"{_channels(ds)}, length {ds.max_length}, {what}; train/val/test "
        f"{sizes}"
        + (
            f"; {100 * source['drop_rate']:.0f} % of samples dropped"
            if source["drop_rate"]
            else ""
        )
    )


def _time_stamps(ds, args) -> tuple[bool, str]:
    """Whether the liquid layers step by the data's time stamps, in words."""
    if not ds.has_times:
        return False, f"no time stamps (uniform steps, dt={args.dt:g})"
    if args.dt_blind:
        return False, "time stamps ignored (--dt-blind: uniform steps)"
    return True, "time stamps used (each step by its own Δt)"


def _baselines(args, task, splits, split_seed) -> dict:
    """The baselines' scores on one split seed, by name."""
    from .. import baselines

    train, val, test = splits
    out = {}
    if task == "regression":  # always: the reference every regressor must beat
        out["training_mean"] = baselines.training_mean(train, test, val=val)
    if args.baseline == "minirocket":
        fn = baselines.minirocket if task == "classification" else None
        fn = fn or baselines.minirocket_regressor
        out["minirocket"] = fn(train, test, val=val, seed=split_seed)
    if args.baseline == "naive":
        out["naive"] = baselines.naive_forecast(test, val=val)
        if args.season:
            out["seasonal_naive"] = baselines.naive_forecast(
                test, season=args.season, val=val
            )
    return out


def run_train(args) -> int:
    import jax.numpy as jnp
    import jax.random as jr

    from .._extras import require
    from .._stats import mean_std
    from ..models import LrcSSM
    from ..training import check_output_dir, fit
    from ..training._checkpoint import atomic_write_text
    from ..training._data import check_split

    # Everything is validated before anything is written or trained (the data, the
    # first model, the curve's plot): a bad input leaves no output folder behind.
    require("matplotlib", "The training-curve plot", "cli")
    task = _check_task_options(args)
    regression = task != "classification"
    source = data_source(args)
    if regression:
        source["task"] = task
    if task == "forecast":
        source.update(horizon=args.horizon, window=args.window, relative=args.relative)
    preset, preset_source = resolve_preset(args, source.get("dataset"))
    neuron, neurons = neuron_choice(args.neuron)
    solver, discretisation = solver_from_args(args), discretisation_from_args(args)
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds has repeated values: {args.seeds}.")
    seed_dirs = {s: os.path.join(args.out, f"seed_{s}") for s in args.seeds}
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
    first = _load(source, args.seeds[0], args.data_dir, task)
    if task == "forecast":
        source["window"] = int(first.max_length)  # the default, resolved
    if task == "classification" and first.num_classes < 2:
        raise ValueError(
            f"{name!r} is not a classification data set with at least two classes; "
            "for real-valued targets pass --task regress."
        )
    readout = _readout(first, task, args)
    scale_targets = task == "regression" and not args.raw_targets
    target_stats = {}
    if scale_targets:
        first, target_stats[args.seeds[0]] = standardise_targets(first)

    time_scales = time_scales_from_args(args.time_scales)

    def model_for(ds, s):
        return LrcSSM(
            ds.input_size,
            _num_outputs(ds, task),
            **preset.model_kwargs(),
            neuron=neuron,
            neurons=neurons,
            solver=solver,
            discretisation=discretisation,
            task="regression" if regression else "classification",
            readout=readout,
            activation=args.activation,
            init=args.init,
            norm_affine=not args.no_norm_affine,
            residual=args.residual,
            dt=args.dt,
            neuron_init=args.neuron_init,
            time_scales=time_scales,
            dtype=jnp.float32,
            key=jr.key(s),
        )

    if args.baseline == "minirocket" and first.train.y.ndim == 3:
        raise ValueError(
            "--baseline minirocket predicts one target per series; the targets "
            "here are per step."
        )
    if args.season and args.season > first.max_length:
        raise ValueError(
            f"--season {args.season}: the seasonal naive forecast looks back one "
            f"season, but the windows have {first.max_length} steps; use --window "
            f"{args.season} or more."
        )
    check_model = model_for(first, args.seeds[0])
    for split_name, split in first.splits.items():
        check_split(check_model, split, split_name)
    out = check_output_dir(args.out)
    seed_dirs = {s: os.path.join(out, f"seed_{s}") for s in args.seeds}
    datasets = {args.seeds[0]: first}

    used_times, times_text = _time_stamps(first, args)
    settings = {
        **preset.to_dict(),
        "source": preset_source,
        "protocol": args.protocol,
        "dt": args.dt,
        "activation": args.activation,
        "init": args.init,
        "norm_affine": not args.no_norm_affine,
        "residual": args.residual,
        "readout": readout or "mean",
        "neuron_init": args.neuron_init,
        "time_scales": list(time_scales) if time_scales else None,
    }
    print(
        f"LrcSSM on {name} ({_describe(first, task, source)}"
        + (
            "; targets standardised with the training split's mean and std"
            if scale_targets
            else "; raw targets"
            if task == "regression"
            else ""
        )
        + f"); {times_text}; "
        f"{preset_source}, {args.protocol} protocol: "
        f"H={preset.hidden_size} D={preset.state_size} blocks={preset.num_blocks} "
        f"lr={preset.train.learning_rate} batch={preset.train.batch_size} "
        f"epochs<={preset.train.epochs} patience={preset.train.patience} "
        f"dt={args.dt:g} solver={args.solver} neuron={neuron}"
        + (f" init={args.neuron_init}" if args.neuron_init else "")
        + " time_scales="
        + ("-".join(f"{v:g}" for v in time_scales) if time_scales else "none"),
        file=sys.stderr,
    )
    if task == "classification":
        print(
            "classes: "
            + ", ".join(f"{i} = {c!r}" for i, c in enumerate(first.classes)),
            file=sys.stderr,
        )
    metric = "mse" if regression else "accuracy"
    per_seed, histories = {}, {}
    for s in args.seeds:
        if task == "forecast":
            ds = first  # the chronological split does not depend on the seed
        else:
            ds = datasets.pop(s, None)
            if ds is None:
                ds = _load(source, s, args.data_dir, task)
                if scale_targets:
                    ds, target_stats[s] = standardise_targets(ds)
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
        if regression:
            record = {
                "test_mse": result.test_metrics["mse"],
                "test_mae": result.test_metrics["mae"],
                "val_mse": result.val_metrics["mse"],
                "val_mae": result.val_metrics["mae"],
            }
        else:
            record = {
                "test_accuracy": result.test_metrics["accuracy"],
                "val_accuracy": result.val_metrics["accuracy"],
            }
        per_seed[s] = {
            **record,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stop_reason": result.stop_reason,
            "train_seconds": seconds,
        }
        if s in target_stats:
            per_seed[s]["target_mean"] = target_stats[s][0].tolist()
            per_seed[s]["target_std"] = target_stats[s][1].tolist()
        per_seed[s].update(_baselines(args, task, splits, s))
        histories[s] = result.history
        scores = ", ".join(
            f"{_BASELINE_NAMES[b]} {per_seed[s][b][f'test_{metric}']:.4g}"
            for b in per_seed[s]
            if b in _BASELINE_NAMES
        )
        print(
            f"seed {s}: test {'MSE' if regression else 'accuracy'} "
            f"{result.test_metrics[metric]:.4g} (best epoch {result.best_epoch} of "
            f"{result.epochs_run}, {result.stop_reason}, {seconds:.1f} s)"
            + (f"; {scores}" if scores else ""),
            file=sys.stderr,
        )
    baseline_names = [b for b in _BASELINE_NAMES if b in per_seed[args.seeds[0]]]
    results = {
        "dataset": name,
        "data_source": source,
        "task": task,
        "model": "LrcSSM",
        "solver": args.solver,
        "neuron": neuron,
        "dt_blind": args.dt_blind,
        "time_stamps_in_data": bool(first.has_times),
        "time_stamps_used": used_times,
        "targets": (
            "standardised"
            if scale_targets
            else "normalised windows"
            if task == "forecast"
            else "raw"
            if regression
            else None
        ),
        "settings": settings,
        "seeds": list(args.seeds),
        "per_seed": {str(s): r for s, r in per_seed.items()},
    }
    metrics = ("mse", "mae") if regression else ("accuracy",)
    for m in metrics:
        mean, std = mean_std([r[f"test_{m}"] for r in per_seed.values()])
        if m == "accuracy":
            results["test_accuracy"] = mean
        results |= {f"test_{m}_mean": mean, f"test_{m}_std": std}
    if task == "classification":
        results["classes"] = list(first.classes)
    if task == "forecast":
        results["mean"] = None if first.mean is None else first.mean.tolist()
        results["std"] = None if first.std is None else first.std.tolist()
    for b in baseline_names:
        results[b] = {}
        for m in metrics:
            b_mean, b_std = mean_std([r[b][f"test_{m}"] for r in per_seed.values()])
            results[b] |= {f"test_{m}_mean": b_mean, f"test_{m}_std": b_std}
        if b == "seasonal_naive":
            results[b]["season"] = args.season
    atomic_write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2))
    _plot(os.path.join(out, "training_curve.png"), histories, regression)
    if regression:
        print(_error_table(name, results, baseline_names))
    else:
        b = baseline_names[0] if baseline_names else None
        print(
            _table(
                name,
                per_seed,
                results["test_accuracy_mean"],
                results["test_accuracy_std"],
                results.get(b),
                b,
            )
        )
    print(times_text[0].upper() + times_text[1:] + ".")
    return 0
