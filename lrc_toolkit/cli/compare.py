"""`lrc-toolkit compare`: one neuron, three views, one table and one figure."""

import json
import math
import os
import sys
import warnings


def _default_discretisation(neuron) -> str:
    """The command-line name of the neuron's own default step, used by the
    sequential and parallel views when --discretisation is not given."""
    from ._args import DISCRETISATIONS

    kind = type(neuron.default_discretisation()).__name__
    return next(name for name, cls in DISCRETISATIONS.items() if cls == kind)


def add_compare_parser(subparsers) -> None:
    from ..models import NEURONS
    from ._args import DISCRETISATIONS, positive_float, positive_int, seed

    p = subparsers.add_parser(
        "compare",
        help="solve one neuron sequentially, in parallel and as an ODE; compare",
        description=(
            "Solve a randomly initialised neuron on a smooth random input in the three "
            "views (lax.scan recurrence, parallel Newton scan, adaptive Diffrax ODE), "
            "print differences, Newton iterations, the largest step factor, each "
            "view's outcome and times, and save a plot and OUT/compare.json."
        ),
    )
    p.add_argument(
        "--neuron",
        choices=list(NEURONS),
        default="lrc",
        metavar="NEURON",
        help=f"a named neuron: {', '.join(NEURONS)} (default: %(default)s)",
    )
    p.add_argument(
        "--discretisation",
        choices=list(DISCRETISATIONS),
        help="the step of the sequential and parallel views (default: the neuron's "
        "own, its default_discretisation(); the first line of the output names it)",
    )
    p.add_argument(
        "--state", type=positive_int, default=16, help="state size D (default: 16)"
    )
    p.add_argument(
        "--inputs",
        type=positive_int,
        default=4,
        help="input channels P (default: %(default)s)",
    )
    p.add_argument(
        "--length",
        type=positive_int,
        default=1000,
        help="time steps T (default: %(default)s)",
    )
    p.add_argument(
        "--dt", type=positive_float, default=1.0, help="step size (default: 1.0)"
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="seed of the neuron and the input (default: %(default)s)",
    )
    p.add_argument("--float64", action="store_true", help="compute in float64")
    p.add_argument(
        "--out",
        default="compare_out",
        help="directory for the figure and the record (default: %(default)s)",
    )
    p.set_defaults(func=run_compare)


def _check(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    if not os.access(args.out, os.W_OK):
        raise ValueError(f"--out {args.out!r} is not writable.")


def run_compare(args) -> int:
    _check(args)
    import jax

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr

    from .._extras import require

    require("matplotlib", "`lrc-toolkit compare`", "cli").use("Agg")
    import lrc_toolkit as lt

    from ..models import NEURONS
    from ._args import discretisation_named

    dtype = jnp.float64 if args.float64 else jnp.float32
    key_neuron, key_input = jr.split(jr.key(args.seed))
    D, P = args.state, args.inputs
    neuron = NEURONS[args.neuron](D, P, dtype=dtype, key=key_neuron)
    if args.discretisation is None:
        args.discretisation = _default_discretisation(neuron)
    discretisation = discretisation_named(args.discretisation)
    # x0 = 0 in the neuron's state dtype (complex for the complex LRCs).
    x0 = jnp.zeros((D,), getattr(neuron, "state_dtype", dtype))
    t = jnp.arange(args.length, dtype=dtype)[:, None] * args.dt
    freqs = jr.uniform(key_input, (P,), dtype, 0.005, 0.05)
    inputs = jnp.sin(2 * jnp.pi * freqs * t) + 0.1 * jr.normal(
        key_input, t.shape[:1] + (P,), dtype
    )
    with warnings.catch_warnings():
        # Diffrax warns that complex support is experimental; the views are compared.
        warnings.filterwarnings("ignore", "Complex dtype support", UserWarning)
        comparison = lt.compare_views(
            neuron, x0, inputs, dt=args.dt, discretisation=discretisation
        )
    print(
        f"{args.neuron}: D={D}, P={P}, T={args.length}, dt={args.dt}, "
        f"{jnp.dtype(dtype).name}, {args.discretisation} step"
    )
    print(comparison.summary())
    with warnings.catch_warnings():
        # A complex state is drawn by its real part.
        warnings.filterwarnings("ignore", "Casting complex values", Warning)
        fig = lt.plot_comparison(comparison)
    figure = os.path.join(args.out, "compare.png")
    fig.savefig(figure, dpi=120)
    record = {
        "neuron": args.neuron,
        "state_size": D,
        "input_size": P,
        "length": args.length,
        "dt": args.dt,
        "dtype": jnp.dtype(dtype).name,
        "discretisation": args.discretisation,
        "parallel_vs_sequential": comparison.parallel_vs_sequential,
        "recurrence_vs_ode": comparison.recurrence_vs_ode,
        "iterations": comparison.iterations,
        # NaN (not computed, e.g. for a dense neuron) is written as null.
        "max_factor": (
            comparison.max_factor if math.isfinite(comparison.max_factor) else None
        ),
        "outcomes": comparison.outcomes,
        "seconds": comparison.seconds,
    }
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {figure} and compare.json")
    failed = [view for view, message in comparison.outcomes.items() if message]
    if failed:
        print(
            f"lrc-toolkit compare: warning: the {', '.join(failed)} view(s) failed "
            "(see the messages above and 'outcomes' in compare.json).",
            file=sys.stderr,
        )
    return 0
