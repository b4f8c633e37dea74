"""Predictability against parallelisability: the largest Lyapunov exponent of a
trajectory against the Newton iterations `ParallelNewton` needs on it.

    nice python benchmarks/lyapunov.py [--quick]

Gonzalez et al. (NeurIPS 2025) show that Newton/DEER on a whole sequence
converges in few iterations when the recurrence is predictable (largest Lyapunov
exponent < 0) and may need up to T when it is chaotic. Here, for LRC, LTC,
FitzHugh-Nagumo and Morris-Lecar neurons and an LRC with parameters scaled up
(x 2, 4, 8, 16, towards instability), at a few input scales or bias currents and two
step sizes, each with its `default_discretisation()`, float32, T = 1000 (`--quick`:
500) and zero `x0`:

- `lyapunov`: `lt.lyapunov_exponent(...)` (per step) along the `Sequential`
  trajectory;
- `iterations`: `Solution.iterations` of `lt.solve(..., solver=ParallelNewton())`
  (default tolerances, `max_iters` = T, automatic damping; its count restarts
  after a damping restart) and the solve's outcome.

Prints the table and the Spearman rank correlation and the Pearson correlation
of the exponent with log10(iterations), as measured (nothing is tuned), and
writes `results/lyapunov.csv` and `results/lyapunov.png` (a scatter plot).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import fmt, machine, parser, write_csv
from scipy import stats

import lrc_toolkit as lt


D, P = 16, 4  # LRC / LTC neurons; FitzHugh-Nagumo / Morris-Lecar: D neurons, 2D states


def _scaled(neuron, scale):
    return jax.tree.map(lambda p: p * jnp.float32(scale), neuron)


# kind -> (build(setting, key), settings, the setting's name, step sizes). A setting
# multiplies the inputs (LRC, LTC), the parameters (LRC x scale) or sets the bias
# current (FitzHugh-Nagumo, Morris-Lecar; firing at 0.5 and 90).
KINDS = {
    "LRC": (lambda s, k: lt.LRC(D, P, dtype=jnp.float32, key=k), (1.0, 4.0), "input x"),
    "LRC x scale": (
        lambda s, k: _scaled(lt.LRC(D, P, dtype=jnp.float32, key=k), s),
        (2.0, 4.0, 8.0, 16.0),
        "params x",
    ),
    "LTC": (lambda s, k: lt.LTC(D, P, dtype=jnp.float32, key=k), (1.0, 4.0), "input x"),
    "FitzHughNagumo": (
        lambda s, k: lt.FitzHughNagumo(2 * D, P, current=s, dtype=jnp.float32, key=k),
        (0.0, 0.5),
        "current",
    ),
    "MorrisLecar": (
        lambda s, k: lt.MorrisLecar(2 * D, P, current=s, dtype=jnp.float32, key=k),
        (0.0, 90.0),
        "current",
    ),
}
STEPS = {
    "LRC": (0.25, 1.0),
    "LRC x scale": (0.25, 1.0),
    "LTC": (0.25, 1.0),
    "FitzHughNagumo": (0.1, 0.5),
    "MorrisLecar": (0.1, 0.5),
}


def _program(static):
    """Exponent and Newton solve, jitted over the neuron's arrays (`static`: the
    rest of it), the inputs and the step: one compilation per kind."""

    @jax.jit
    def f(params, x0, u, dt):
        n = eqx.combine(params, static)
        disc = n.default_discretisation()
        lam = lt.lyapunov_exponent(n, x0, u, dt=dt, discretisation=disc)
        sol = lt.solve(
            n,
            x0,
            u,
            dt=dt,
            discretisation=disc,
            solver=lt.ParallelNewton(),
            throw=False,
        )
        return lam, sol

    return f


def run(T, seed=0):
    rows, programs = [], {}
    ku, kn = jr.split(jr.key(seed))
    inputs = jr.normal(ku, (T, P), jnp.float32)
    for kind, (build, settings, setting_name) in KINDS.items():
        for setting in settings:
            neuron = build(setting, kn)
            params, static = eqx.partition(neuron, eqx.is_array)
            if kind not in programs:
                programs[kind] = _program(static)
            u = inputs * jnp.float32(setting if setting_name == "input x" else 1.0)
            x0 = jnp.zeros(neuron.state_size, jnp.float32)
            for dt in STEPS[kind]:
                lam, sol = programs[kind](params, x0, u, jnp.float32(dt))
                rows.append(
                    dict(
                        neuron=kind,
                        setting=f"{setting_name} {setting:g}",
                        dt=dt,
                        T=T,
                        state_size=neuron.state_size,
                        discretisation=type(neuron.default_discretisation()).__name__,
                        lyapunov=float(lam),
                        lyapunov_per_time=float(lam) / dt,
                        iterations=int(sol.iterations),
                        outcome=sol.outcome,
                    )
                )
                r = rows[-1]
                print(
                    f"{kind}, {r['setting']}, dt {dt:g}: exponent "
                    f"{r['lyapunov']:.4g}, {r['iterations']} iterations "
                    f"({r['outcome']})",
                    flush=True,
                )
    return rows


def correlations(rows):
    """Spearman's rho of (exponent, iterations) and Pearson's r of (exponent,
    log10 iterations), over the rows with a finite exponent."""
    pts = [
        (r["lyapunov"], r["iterations"]) for r in rows if math.isfinite(r["lyapunov"])
    ]
    lam, its = np.array(pts, dtype=float).T
    spearman = stats.spearmanr(lam, its).statistic
    pearson = stats.pearsonr(lam, np.log10(np.maximum(its, 1))).statistic
    return float(spearman), float(pearson), len(pts)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for kind in KINDS:
        pts = [
            (r["lyapunov"], r["iterations"])
            for r in rows
            if r["neuron"] == kind and math.isfinite(r["lyapunov"])
        ]
        if pts:
            ax.scatter(*zip(*pts), label=kind, s=22, alpha=0.8)
    ax.axvline(0.0, color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("largest Lyapunov exponent (per step)")
    ax.set_ylabel("ParallelNewton iterations")
    spearman, pearson, n = correlations(rows)
    T = rows[0]["T"]
    ax.set_title(
        f"T={T}, float32; Spearman {spearman:.2f}, Pearson (log it.) {pearson:.2f}, "
        f"n={n}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=None, help="sequence length")
    args = p.parse_args(argv)
    T = args.T or (500 if args.quick else 1000)
    print(machine())
    rows = run(T)
    spearman, pearson, n = correlations(rows)
    print(fmt(rows, list(rows[0])))
    print(
        f"over {n} runs: Spearman rho(exponent, iterations) = {spearman:.3f}, "
        f"Pearson r(exponent, log10 iterations) = {pearson:.3f}"
    )
    write_csv(args.out / "lyapunov.csv", rows)
    if not args.no_plot:
        plot(rows, args.out / "lyapunov.png")
    return rows


if __name__ == "__main__":
    main()
