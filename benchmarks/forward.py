"""(a) + (d): forward time and compiled peak memory of `solve_parallel` against
`solve_sequential` (`lax.scan`) and a naive reference-style quasi-Newton solver.

    python benchmarks/forward.py [--quick] [--repeats 7]

Every contender is compiled and warmed up first, timed interleaved with the others
in one process (`block_until_ready`), and its states are checked against the
sequential solution on every timed call. Writes `results/forward.csv` and
`results/forward.png`; ratios are medians over the rounds, relative to `lax.scan`.
"""

import functools

import jax
import jax.numpy as jnp
from _common import (
    batched,
    compiled_memory,
    machine,
    max_diff,
    median_ms,
    naive_quasi_newton,
    problem,
    sweep,
    time_interleaved,
)

import lrc_toolkit as lt


FULL = dict(T=(1000, 4000, 17984, 65536), D=(16, 64, 256), batch=(1, 16))
QUICK = dict(T=(1000, 17984), D=(64,), batch=(1, 16))
NAIVE_JAC_LIMIT = 2**31  # bytes of the naive solver's (batch, T, D, D) Jacobian
ELEMENT_LIMIT = 2**26  # batch * T * D above which a config is skipped


def contenders():
    assoc = functools.partial(lt.linear_recurrence, scan="associative")
    return {
        "sequential": lambda n, x0, u: lt.solve_sequential(n, x0, u).states,
        "parallel": lambda n, x0, u: lt.solve_parallel(n, x0, u).states,
        "parallel_assoc": lambda n, x0, u: (
            lt.solve_parallel(n, x0, u, recurrence=assoc).states
        ),
        "naive": lambda n, x0, u: naive_quasi_newton(n, x0, u)[0],
        "solve_auto": lambda n, x0, u: lt.solve(n, x0, u, mode="auto").states,
    }


def iterations(n, x0, u, naive=True):
    """The largest Newton iteration count over the batch (parallel, naive)."""
    par = jax.jit(jax.vmap(lambda x0, u: lt.solve_parallel(n, x0, u).iterations))
    nai = jax.jit(jax.vmap(lambda x0, u: naive_quasi_newton(n, x0, u)[1]))
    return int(jnp.max(par(x0, u))), int(jnp.max(nai(x0, u))) if naive else None


def run(T, D, batch, repeats, names=None):
    row = dict(T=T, D=D, batch=batch)
    if batch * T * D > ELEMENT_LIMIT:
        return [dict(row, contender="all", status="skipped: size")]
    n, x0, u = problem(T, D, batch)
    fns = {
        k: batched(f) for k, f in contenders().items() if names is None or k in names
    }
    if batch * T * D * D * 4 > NAIVE_JAC_LIMIT:
        fns.pop("naive", None)
    ref = fns["sequential"](n, x0, u)
    tol = {"naive": 1e-3}

    def check(name, out):
        err = max_diff(out, ref)
        if not err <= tol.get(name, 1e-4):
            raise AssertionError(
                f"{name} disagrees with lax.scan by {err:.2e} at {row}"
            )

    times = time_interleaved(
        {k: functools.partial(f, n, x0, u) for k, f in fns.items()}, check, repeats
    )
    it_par, it_naive = iterations(n, x0, u, naive="naive" in fns)
    base = median_ms(times["sequential"])
    rows = []
    for name, ts in times.items():
        mem = compiled_memory(fns[name], n, x0, u)
        rows.append(
            dict(
                row,
                contender=name,
                status="ok",
                median_ms=median_ms(ts),
                min_ms=1e3 * min(ts),
                ratio_to_scan=median_ms(ts) / base,
                iterations={"parallel": it_par, "naive": it_naive}.get(name, ""),
                max_abs_err=max_diff(fns[name](n, x0, u), ref),
                **mem,
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
        1, len(configs), figsize=(4 * len(configs), 3.4), squeeze=False
    )
    for ax, (D, batch) in zip(axes[0], configs):
        for name in ("sequential", "parallel", "parallel_assoc", "naive", "solve_auto"):
            pts = sorted(
                (r["T"], r["median_ms"])
                for r in ok
                if (r["D"], r["batch"], r["contender"]) == (D, batch, name)
            )
            if pts:
                ax.loglog(*zip(*pts), "o-", label=name)
        ax.set_title(f"D={D}, batch={batch}")
        ax.set_xlabel("T")
        ax.set_ylabel("forward time (ms, median)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Forward pass, LRC float32 — {machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    columns = ["T", "D", "batch", "contender", "median_ms", "ratio_to_scan"]
    columns += ["iterations", "peak_mib", "status"]
    return sweep(
        __doc__.splitlines()[0],
        {"T": int, "D": int, "batch": int},
        QUICK,
        FULL,
        lambda args, T, D, batch: run(T, D, batch, args.repeats),
        "forward",
        plot,
        columns,
        argv,
    )


if __name__ == "__main__":
    main()
