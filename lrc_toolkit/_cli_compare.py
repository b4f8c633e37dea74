"""`lrc-toolkit compare`: one neuron, three views, one table and one figure."""

import json
import os


NEURONS = ("lrc", "lrc-symmetric", "stc", "dense-lrc", "ltc")


def add_compare_parser(subparsers) -> None:
    from .cli import _positive_float, _positive_int, _seed

    p = subparsers.add_parser(
        "compare",
        help="solve one neuron sequentially, in parallel and as an ODE; compare",
        description=(
            "Solve a randomly initialised neuron on a smooth random input in the three "
            "views (lax.scan recurrence, parallel Newton scan, adaptive Diffrax ODE), "
            "print differences, Newton iterations and times, and save a plot."
        ),
    )
    p.add_argument("--neuron", choices=NEURONS, default="lrc")
    p.add_argument("--state", type=_positive_int, default=16, help="state size D")
    p.add_argument("--inputs", type=_positive_int, default=4, help="input channels P")
    p.add_argument("--length", type=_positive_int, default=1000, help="time steps T")
    p.add_argument("--dt", type=_positive_float, default=1.0, help="step size")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--float64", action="store_true", help="compute in float64")
    p.add_argument("--out", default="compare_out", help="directory for the figure")
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
    import matplotlib

    matplotlib.use("Agg")
    import lrc_toolkit as lt

    dtype = jnp.float64 if args.float64 else jnp.float32
    key_neuron, key_input = jr.split(jr.key(args.seed))
    D, P = args.state, args.inputs
    make = {
        "lrc": lambda: lt.LRC(D, P, dtype=dtype, key=key_neuron),
        "lrc-symmetric": lambda: lt.LRC(
            D, P, elastance="symmetric", dtype=dtype, key=key_neuron
        ),
        "stc": lambda: lt.STC(D, P, dtype=dtype, key=key_neuron),
        "dense-lrc": lambda: lt.DenseLRC(D, P, dtype=dtype, key=key_neuron),
        "ltc": lambda: lt.LTC(D, P, dtype=dtype, key=key_neuron),
    }[args.neuron]
    neuron = make()
    discretisation = lt.SemiImplicitEuler() if args.neuron == "ltc" else lt.Euler()
    t = jnp.arange(args.length, dtype=dtype)[:, None] * args.dt
    freqs = jr.uniform(key_input, (P,), dtype, 0.005, 0.05)
    inputs = jnp.sin(2 * jnp.pi * freqs * t) + 0.1 * jr.normal(
        key_input, t.shape[:1] + (P,), dtype
    )
    comparison = lt.compare_views(
        neuron, inputs, dt=args.dt, discretisation=discretisation
    )
    print(
        f"{args.neuron}: D={D}, P={P}, T={args.length}, dt={args.dt}, {jnp.dtype(dtype).name}"
    )
    print(comparison.summary())
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
        "parallel_vs_sequential": comparison.parallel_vs_sequential,
        "recurrence_vs_ode": comparison.recurrence_vs_ode,
        "iterations": comparison.iterations,
        "seconds": comparison.seconds,
    }
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {figure} and compare.json")
    return 0
