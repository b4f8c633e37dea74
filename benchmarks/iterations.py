"""(c): Newton iterations of `ParallelNewton` to converge, against T and against the
parameter scale (contracting at the reference initialisation, towards unstable as
the parameters grow), cold (zero initial guess) and warm-started.

    python benchmarks/iterations.py [--quick]

The warm start is `init=` the states of a neuron whose parameters differ by a
relative 1e-3 (a training step). The naive reference-style solver's iterations are
listed too. Every run's states are checked against `lax.scan`. Writes
`results/iterations.csv` and `results/iterations.png`.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
from _common import (
    max_diff,
    naive_quasi_newton,
    problem,
    sweep,
)

import lrc_toolkit as lt


FULL = dict(T=(1000, 4000, 17984, 65536), scale=(0.5, 1.0, 2.0, 4.0, 8.0))
QUICK = dict(T=(1000, 17984, 65536), scale=(1.0, 4.0))
D = 64


@jax.jit
def _run(n, n_prev, x0, u):
    scan = lt.Sequential(check_stability=False)
    newton = lt.ParallelNewton()
    seq = lt.solve(n, x0, u, solver=scan, throw=False).states
    cold = lt.solve(n, x0, u, solver=newton, throw=False)
    warm_init = lt.solve(n_prev, x0, u, solver=scan, throw=False).states
    warm = lt.solve(n, x0, u, solver=newton, init=warm_init, throw=False)
    naive_states, naive_k = naive_quasi_newton(n, x0, u)
    return seq, cold, warm, naive_states, naive_k


def run(T, scale):
    n, x0, u = problem(T, D, 1, scale=scale)
    x0, u = x0[0], u[0]
    perturb = lambda p: p * (1 + 1e-3 * jr.normal(jr.key(7), p.shape, p.dtype))
    n_prev = jax.tree.map(perturb, n)
    seq, cold, warm, naive_states, naive_k = _run(n, n_prev, x0, u)
    finite = bool(jnp.all(jnp.isfinite(seq)))
    return dict(
        T=T,
        D=D,
        scale=scale,
        scan_finite=finite,
        iterations_cold=int(cold.iterations),
        converged_cold=bool(cold.converged),
        err_cold=max_diff(cold.states, seq),
        iterations_warm=int(warm.iterations),
        converged_warm=bool(warm.converged),
        err_warm=max_diff(warm.states, seq),
        iterations_naive=int(naive_k),
        err_naive=max_diff(naive_states, seq),
    )


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for scale in sorted({r["scale"] for r in rows}):
        pts = sorted(
            (r["T"], r["iterations_cold"]) for r in rows if r["scale"] == scale
        )
        ax.semilogx(*zip(*pts), "o-", label=f"scale {scale:g}")
        pts = sorted(
            (r["T"], r["iterations_warm"]) for r in rows if r["scale"] == scale
        )
        ax.semilogx(*zip(*pts), "x:", color=ax.lines[-1].get_color())
    ax.set_xlabel("T")
    ax.set_ylabel("Newton iterations (o cold, x warm)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"LRC D={D} float32, parameters x scale", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    return sweep(
        __doc__.splitlines()[0],
        {"T": int, "scale": float},
        QUICK,
        FULL,
        lambda args, T, scale: [run(T, scale)],
        "iterations",
        plot,
        argv=argv,
    )


if __name__ == "__main__":
    main()
