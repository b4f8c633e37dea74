"""Shared pieces of the subcommands: argument types, the solver and data options,
and neuron factories named on the command line. Imports nothing heavy at module
level (the CLI starts fast)."""

import argparse
import importlib
import math
import os

from .._extras import MissingExtraError


DEFAULT_DATASET = "BasicMotions"
DEFAULT_SEEDS = (2345,)
USER_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    MissingExtraError,
)
# The modules named on the command line, by the names their configurations use:
# the CLI builds them as a checkpoint's configuration is read back.
SOLVERS = {
    "parallel": "ParallelNewton",
    "sequential": "Sequential",
    "ode": "ODE",
    "auto": "Auto",
}
DISCRETISATIONS = {
    "euler": "Euler",
    "semi-implicit": "SemiImplicitEuler",
    "implicit": "ImplicitEuler",
    "closed-form": "ClosedForm",
}
# The parallel solver's options, each named as the field of `ParallelNewton` it sets.
NEWTON_OPTIONS = ("method", "rtol", "atol", "max_iters", "damping")


def _argument_type(name, convert, noun, ok, message):
    """An argparse `type`: `convert(text)` (else "expected <noun>"), then `ok(value)`
    (else `message`, formatted with `text` and `value`)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(message.format(text=text, value=value))
        return value

    parse.__name__ = name
    return parse


positive_int = _argument_type(
    "positive_int",
    int,
    "an integer",
    lambda v: v >= 1,
    "expected a positive integer, got {value}",
)
non_negative_int = _argument_type(
    "non_negative_int",
    int,
    "an integer",
    lambda v: v >= 0,
    "expected an integer >= 0, got {value}",
)
seed = _argument_type(
    "seed", int, "an integer", lambda v: v >= 0, "a seed must be >= 0, got {value}"
)
positive_float = _argument_type(
    "positive_float",
    float,
    "a number",
    lambda v: math.isfinite(v) and v > 0,
    "expected a finite positive number, got {text}",
)
non_negative_float = _argument_type(
    "non_negative_float",
    float,
    "a number",
    lambda v: math.isfinite(v) and v >= 0,
    "expected a finite number >= 0, got {text}",
)
fraction = _argument_type(
    "fraction",
    float,
    "a number",
    lambda v: 0 <= v < 1,
    "expected a fraction in [0, 1), got {text}",
)


# ---------------------------------------------------------------- training setup

# The training settings a subcommand can override, each named as the `Preset`
# setting it changes (`Preset.replace`): its flag, its argparse type and its help.
SETUP_OPTIONS = {
    "hidden_size": ("--hidden", positive_int, "hidden width H"),
    "state_size": ("--state", positive_int, "liquid state size D"),
    "num_blocks": ("--blocks", positive_int, "number of blocks"),
    "learning_rate": ("--lr", positive_float, "learning rate"),
    "batch_size": ("--batch-size", positive_int, "sequences per step"),
    "epochs": ("--epochs", positive_int, "epoch cap"),
    "patience": (
        "--patience",
        positive_int,
        "epochs without improvement before stopping",
    ),
    "schedule": (
        "--schedule",
        None,
        "learning rate over the run: constant, or cosine decay to 0 over --epochs",
    ),
    "warmup_epochs": (
        "--warmup-epochs",
        non_negative_int,
        "linear learning-rate warm-up from 0 over this many epochs",
    ),
    "weight_decay": (
        "--weight-decay",
        non_negative_float,
        "AdamW's decoupled weight decay; 0: Adam",
    ),
    "time_budget": (
        "--time-budget",
        positive_float,
        "seconds of training per seed; the run stops cleanly at an epoch boundary "
        "and can be continued with --resume",
    ),
}


def add_setup_arguments(group, preset, names=tuple(SETUP_OPTIONS)) -> None:
    """Add the options `names` (keys of `SETUP_OPTIONS`) to `group`; each help ends
    with `preset`'s value, and an option left out keeps it (see `setup_overrides`)."""
    from ..training import SCHEDULES

    for name in names:
        flag, kind, text = SETUP_OPTIONS[name]
        value = getattr(preset.train if hasattr(preset.train, name) else preset, name)
        shown = f"{value:g}" if isinstance(value, float) else str(value).lower()
        kwargs = dict(choices=SCHEDULES) if kind is None else dict(type=kind)
        group.add_argument(
            flag,
            dest=name,
            metavar=None if kind is None else flag[2:].upper().replace("-", "_"),
            help=f"{text} (default {shown})",
            **kwargs,
        )


def setup_overrides(args, names=tuple(SETUP_OPTIONS)) -> dict:
    """The settings given on the command line, by `Preset.replace`'s names (`None`
    for those left out, which `replace` ignores)."""
    return {name: getattr(args, name) for name in names}


# ----------------------------------------------------------------------- solvers


def add_solver_arguments(p) -> None:
    """The liquid layers' solver options (every option of the solver modules)."""
    from ..models._solver_config import ode_solvers

    g = p.add_argument_group("liquid-layer solver")
    g.add_argument(
        "--solver",
        choices=list(SOLVERS),
        default="parallel",
        help="parallel: Newton + parallel scan (the paper's); sequential: lax.scan; "
        "ode: Diffrax, one step per sample; auto: sequential on CPU, parallel on "
        "accelerators (default: %(default)s)",
    )
    g.add_argument(
        "--discretisation",
        choices=list(DISCRETISATIONS),
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
        type=positive_int,
        help="parallel solver: iteration limit (default: the sequence length)",
    )
    g.add_argument(
        "--rtol",
        type=positive_float,
        help="parallel solver: relative tolerance (default: 1e-5 in float32)",
    )
    g.add_argument(
        "--atol",
        type=positive_float,
        help="parallel solver: absolute tolerance (default: 1e-5 in float32)",
    )
    g.add_argument(
        "--damping",
        type=positive_float,
        help="parallel solver: clip step Jacobians to this radius (damped Newton; "
        "default: exact Newton)",
    )
    g.add_argument(
        "--fallback",
        action="store_true",
        help="parallel solver: recompute a sequence whose Newton iteration failed "
        "with lax.scan (default: report the failure)",
    )
    g.add_argument(
        "--ode-solver",
        default="Euler",
        choices=ode_solvers(),
        metavar="NAME",
        help=f"ode solver: a Diffrax ODE solver, one of {', '.join(ode_solvers())} "
        "(default: %(default)s, which reproduces the explicit-Euler recurrence)",
    )


def solver_from_args(args):
    """The solver module named by the `--solver ...` options (an option of another
    solver than the one chosen is refused, not ignored)."""
    from ..models._solver_config import solver_from_config

    config = {"type": SOLVERS[args.solver]}
    given = [name for name in NEWTON_OPTIONS if getattr(args, name) is not None]
    if args.solver == "parallel":
        config |= {name: getattr(args, name) for name in given}
        config["fallback"] = {"type": "Sequential"} if args.fallback else None
    elif given or args.fallback:
        option = (given or ["fallback"])[0].replace("_", "-")
        raise ValueError(
            f"--{option} is an option of --solver parallel, not --solver {args.solver}."
        )
    if args.solver == "ode":
        config["solver"] = {"type": f"diffrax.{args.ode_solver}"}
    return solver_from_config(config)


def discretisation_named(name: str):
    """The discretisation module a `--discretisation` choice names."""
    from ..models._solver_config import discretisation_from_config

    return discretisation_from_config({"type": DISCRETISATIONS[name]})


def discretisation_from_args(args):
    """The discretisation named by `--discretisation` (`None`: the model's default
    for its neuron)."""
    if args.discretisation is None:
        return None
    return discretisation_named(args.discretisation)


# ----------------------------------------------------------------------- neurons


def is_factory_path(name: str) -> bool:
    return ":" in name


def import_factory(path: str):
    """`package.module:factory` -> the callable. Only ever called on a path the user
    typed on this command line (a run folder never makes the CLI import code)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(
            f"--neuron {path!r}: expected a built-in name or 'package.module:factory'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"--neuron {path!r}: cannot import {module_name!r} ({e}). Is the module on "
            "PYTHONPATH (e.g. run from its folder, or `pip install` its package)?"
        ) from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ValueError(f"--neuron {path!r}: {module_name!r} has no {attr!r}.")
    if not callable(factory):
        raise ValueError(f"--neuron {path!r}: {attr!r} is not callable.")
    return factory


def neuron_choice(name: str) -> tuple[str, dict]:
    """`(name, neurons)` for `LrcSSM(neuron=name, neurons=neurons)`: a built-in
    name, or a user factory imported from `package.module:factory`."""
    from ..models import NEURONS

    if is_factory_path(name):
        return name, {name: import_factory(name)}
    if name not in NEURONS:
        raise ValueError(
            f"Unknown --neuron {name!r}; choose one of {', '.join(NEURONS)}, or name "
            "your own factory as 'package.module:factory' (called as "
            "factory(state_size, input_size, dtype=..., key=...))."
        )
    return name, {}


# -------------------------------------------------------------------------- data


def add_data_arguments(p, *, default_dataset: str | None = DEFAULT_DATASET) -> None:
    g = p.add_argument_group("data")
    source = g.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset",
        default=None,
        help="UEA data set name"
        + (
            f" (default: {default_dataset}, bundled with aeon: no download)"
            if default_dataset
            else ""
        ),
    )
    source.add_argument(
        "--data",
        metavar="FILE.npz",
        help="your own data set: an .npz with x (N, T, C), y (N,), optional mask "
        "(N, T) and times; split with the paper's protocol",
    )
    g.add_argument(
        "--data-dir",
        help="folder of downloaded UEA data sets (default: $LRC_TOOLKIT_DATA or "
        "~/.lrc_toolkit/data)",
    )
    g.add_argument(
        "--drop-rate",
        type=fraction,
        default=None,
        help="drop this fraction of each series' samples at random, keeping the "
        "time stamps (irregular sampling; default: 0)",
    )
    g.add_argument(
        "--drop-seed",
        type=seed,
        default=None,
        help="seed of the random drop (default: the neural-CDE code's, 56789)",
    )


def data_source(args, *, default_dataset: str | None = DEFAULT_DATASET) -> dict:
    """The data options as a JSON-serialisable dict (recorded with a run, so that
    `evaluate` reloads the same data)."""
    from ..data import DEFAULT_DROP_SEED

    source = {
        "dataset": args.dataset if args.data is None else None,
        "data": None if args.data is None else os.path.abspath(args.data),
        "drop_rate": args.drop_rate or 0.0,
        "drop_seed": DEFAULT_DROP_SEED if args.drop_seed is None else args.drop_seed,
    }
    if source["dataset"] is None and source["data"] is None:
        source["dataset"] = default_dataset
    return source


def load_data(source: dict, split_seed: int, data_dir=None):
    """Load the data set a `data_source` dict names, split with `split_seed` (its
    `task`, if any: `"regression"`, or `"forecast"` with `horizon` and `window`)."""
    from ..data import load_file, load_uea

    task = source.get("task", "classification")
    if task == "forecast":  # a chronological split: no seed, no drop
        return load_file(
            source["data"],
            task=task,
            horizon=source["horizon"],
            window=source.get("window"),
            relative=source.get("relative", False),
        )
    kwargs = dict(
        seed=split_seed,
        drop_rate=source.get("drop_rate", 0.0),
        drop_seed=source.get("drop_seed"),
    )
    if kwargs["drop_seed"] is None:
        del kwargs["drop_seed"]
    if task != "classification":
        kwargs["task"] = task
    if source.get("data"):
        return load_file(source["data"], **kwargs)
    if not source.get("dataset"):
        raise ValueError("No data set: pass --dataset NAME or --data FILE.npz.")
    return load_uea(source["dataset"], data_dir=data_dir, **kwargs)


def source_name(source: dict) -> str:
    if source.get("data"):
        return os.path.basename(source["data"])
    return source["dataset"]
