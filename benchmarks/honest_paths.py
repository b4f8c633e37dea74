"""The cost of the honest default: `Sequential()` with its stability check against
a plain `jax.lax.scan` of the same step (no check) and against
`Sequential(check_stability=False)`, for diagonal and dense neurons.

Target (issue 19): `Sequential()` <= 1.15x the plain scan, for diagonal and dense
neurons alike, at D = P = 64, T = 17 984, dt = 0.01. The ratios are measured in one
run, the contenders interleaved round by round.

    python benchmarks/honest_paths.py            # T = 17 984
    python benchmarks/honest_paths.py --quick    # T = 4 096
"""

import jax
import jax.numpy as jnp
import jax.random as jr
from _common import (
    fmt,
    KEY_D,
    KEY_T,
    machine,
    median_ms,
    parser,
    time_interleaved,
    write_csv,
)

import lrc_toolkit as lt


jax.config.update("jax_enable_x64", False)

NEURONS = {
    "lrc": (lambda D, P, k: lt.LRC(D, P, dtype=jnp.float32, key=k), lt.Euler()),
    "ltc": (lambda D, P, k: lt.LTC(D, P, dtype=jnp.float32, key=k), lt.Euler()),
    "ltc-semi-implicit": (
        lambda D, P, k: lt.LTC(D, P, dtype=jnp.float32, key=k),
        lt.SemiImplicitEuler(),
    ),
    "dense-lrc": (
        lambda D, P, k: lt.DenseLRC(D, P, dtype=jnp.float32, key=k),
        lt.Euler(),
    ),
}


def contenders(neuron, disc, x0, inputs, dt):
    h = jnp.asarray(dt, jnp.float32)

    @jax.jit
    def plain(neuron, x0, inputs):
        d = jax.vmap(neuron.drive)(inputs)  # hoisted, as every solver does

        def body(x, dd):
            x = disc.step(neuron, x, dd, h)
            return x, x

        return jax.lax.scan(body, x0, d)[1]

    def solver(s):
        f = jax.jit(
            lambda n, x, u: lt.solve(
                n, x, u, dt=dt, solver=s, discretisation=disc, throw=False
            )
        )
        return lambda: f(neuron, x0, inputs)

    return {
        "lax.scan": lambda: plain(neuron, x0, inputs),
        "Sequential(check_stability=False)": solver(
            lt.Sequential(check_stability=False)
        ),
        "Sequential()": solver(lt.Sequential()),
    }


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dt", type=float, default=0.01)
    args = p.parse_args(argv)
    T = 4096 if args.quick else KEY_T
    D = P = KEY_D
    print(machine())
    rows = []
    for name, (make, disc) in NEURONS.items():
        k1, k2 = jr.split(jr.key(0))
        neuron = make(D, P, k1)
        inputs = jr.normal(k2, (T, P), jnp.float32)
        x0 = jnp.zeros(D, jnp.float32)
        fs = contenders(neuron, disc, x0, inputs, args.dt)
        reference = {}

        def check(label, out, reference=reference):
            states = out if isinstance(out, jax.Array) else out.states
            if "ref" not in reference:
                reference["ref"] = states
            assert float(jnp.max(jnp.abs(states - reference["ref"]))) <= 1e-5, label

        times = time_interleaved(fs, check, args.repeats)
        base = median_ms(times["lax.scan"])
        sol = fs["Sequential()"]()
        for label, ts in times.items():
            rows.append(
                dict(
                    neuron=name,
                    discretisation=type(disc).__name__,
                    T=T,
                    D=D,
                    contender=label,
                    ms=median_ms(ts),
                    ratio=median_ms(ts) / base,
                    outcome=sol.outcome if label == "Sequential()" else "",
                )
            )
    print(
        fmt(rows, ["neuron", "discretisation", "contender", "ms", "ratio", "outcome"])
    )
    write_csv(
        args.out / ("honest_paths_quick.csv" if args.quick else "honest_paths.csv"),
        rows,
    )


if __name__ == "__main__":
    main()
