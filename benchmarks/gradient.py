"""(b) + (d): forward + gradient time and compiled peak memory. The fixed-point VJP
of `ParallelNewton()` and of `Sequential()` against reverse-mode autodiff through
`lax.scan` (`Sequential(autodiff=True, check_stability=False)`).

    python benchmarks/gradient.py [--quick] [--repeats 7]

The loss is sum(w * states) with a fixed random w, averaged over the batch; the
gradient is taken w.r.t. every parameter of the neuron and the inputs. Every timed
call's gradients are checked against autodiff through `lax.scan`. Writes
`results/gradient.csv` and `results/gradient.png`.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import (
    compiled_memory,
    machine,
    median_ms,
    problem,
    sweep,
    time_interleaved,
)

import lrc_toolkit as lt


FULL = dict(T=(1000, 4000, 17984, 65536), D=(16, 64, 256), batch=(1, 16))
QUICK = dict(T=(1000, 17984), D=(64,), batch=(1,))
ELEMENT_LIMIT = 2**25


def with_solver(solver):
    return lambda n, x0, u: lt.solve(n, x0, u, solver=solver).states


SOLVERS = {
    "scan_autodiff": with_solver(lt.Sequential(autodiff=True, check_stability=False)),
    "parallel_implicit": with_solver(lt.ParallelNewton()),
    "sequential_implicit": with_solver(lt.Sequential()),
}


def loss_and_grad(solver):
    def loss(neuron, inputs, x0, w):
        states = jax.vmap(solver, in_axes=(None, 0, 0))(neuron, x0, inputs)
        return jnp.mean(jnp.sum(w * states, axis=(1, 2)))

    return eqx.filter_jit(eqx.filter_value_and_grad(loss))


def rel_err(g, ref):
    leaves = jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
    refs = jax.tree.leaves(eqx.filter(ref, eqx.is_inexact_array))
    return max(
        float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))
        for a, b in zip(leaves, refs)
    )


def run(T, D, batch, repeats):
    row = dict(T=T, D=D, batch=batch)
    if batch * T * D > ELEMENT_LIMIT:
        return [dict(row, contender="all", status="skipped: size")]
    n, x0, u = problem(T, D, batch)
    w = jr.normal(jr.key(1), u.shape[:2] + (D,), jnp.float32)
    # gradients w.r.t. the neuron and the inputs
    diff = (n, u)
    fns = {k: loss_and_grad(s) for k, s in SOLVERS.items()}
    _, ref = fns["scan_autodiff"](n, u, x0, w)

    def check(name, out):
        err = rel_err(out[1], ref)
        if not err <= 1e-3:
            raise AssertionError(
                f"{name}: gradient off by {err:.2e} (relative) at {row}"
            )

    times = time_interleaved(
        {k: functools.partial(f, *diff, x0, w) for k, f in fns.items()}, check, repeats
    )
    base = median_ms(times["scan_autodiff"])
    rows = []
    for name, ts in times.items():
        jitted = jax.jit(
            lambda n, u, x0, w, f=fns[name]: f(n, u, x0, w)
        )  # for XLA's memory analysis
        rows.append(
            dict(
                row,
                contender=name,
                status="ok",
                median_ms=median_ms(ts),
                min_ms=1e3 * min(ts),
                ratio_to_scan=median_ms(ts) / base,
                grad_rel_err=rel_err(fns[name](*diff, x0, w)[1], ref),
                **compiled_memory(jitted, n, u, x0, w),
            )
        )
    return rows


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    configs = sorted({(r["D"], r["batch"]) for r in ok})
    fig, axes = plt.subplots(
        2, len(configs), figsize=(4 * len(configs), 6.4), squeeze=False
    )
    for j, (D, batch) in enumerate(configs):
        for name in SOLVERS:
            pts = sorted(
                (r["T"], r["median_ms"], r["peak_mib"])
                for r in ok
                if (r["D"], r["batch"], r["contender"]) == (D, batch, name)
            )
            if pts:
                T, ms, mib = zip(*pts)
                axes[0][j].loglog(T, ms, "o-", label=name)
                axes[1][j].loglog(T, mib, "o-", label=name)
        axes[0][j].set_title(f"D={D}, batch={batch}")
        axes[0][j].set_ylabel("forward + gradient (ms, median)")
        axes[1][j].set_ylabel("compiled peak memory (MiB)")
        axes[1][j].set_xlabel("T")
        for ax in axes[:, j]:
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Forward + gradient, LRC float32 — {machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    columns = ["T", "D", "batch", "contender", "median_ms", "ratio_to_scan"]
    columns += ["peak_mib", "grad_rel_err", "status"]
    return sweep(
        __doc__.splitlines()[0],
        {"T": int, "D": int, "batch": int},
        QUICK,
        FULL,
        lambda args, T, D, batch: run(T, D, batch, args.repeats),
        "gradient",
        plot,
        columns,
        argv,
    )


if __name__ == "__main__":
    main()
