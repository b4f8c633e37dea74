"""(a) + (d): forward time and compiled peak memory of `ParallelNewton` against
`Sequential` (`lax.scan`) and a naive reference-style quasi-Newton solver.

    python benchmarks/forward.py [--quick] [--repeats 7] [--chunks 128 256 ...]

Contenders: `sequential` is `lt.Sequential(check_stability=False)`, the plain
`lax.scan` baseline every ratio refers to; `sequential_checked` is `lt.Sequential()`
with its per-step stability check (the check's cost); `parallel` is
`lt.ParallelNewton()` with its defaults (the cache-blocked sweep with the CPU's
sequential scan: about 32768 / D steps per chunk, 500 at D = 64); `parallel_unchunked` the same sweep over the
whole sequence at once (`chunk_size=T`); `parallel_assoc` the associative scan;
`naive` the reference implementation's quasi-DEER written its way; `solve_auto`
`lt.Auto()`. `--chunks 128 256 ...` adds `parallel_c<N>` contenders
(`chunk_size=N`).

Every contender is compiled and warmed up first, timed interleaved with the others
in one process (`block_until_ready`), and its states are checked against the
sequential solution on every timed call. Writes `results/forward.csv` and
`results/forward.png`; ratios are medians over the rounds, relative to `lax.scan`.
"""

import argparse
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
    positive,
    problem,
    sweep,
    time_interleaved,
)

import lrc_toolkit as lt


FULL = dict(T=(1000, 4000, 17984, 65536), D=(16, 64, 256), batch=(1, 16))
QUICK = dict(T=(1000, 17984), D=(64,), batch=(1, 16))
NAIVE_JAC_LIMIT = 2**31  # bytes of the naive solver's (batch, T, D, D) Jacobian
ELEMENT_LIMIT = 2**26  # batch * T * D above which a config is skipped


def with_solver(solver):
    return lambda n, x0, u: lt.solve(n, x0, u, solver=solver).states


def contenders(T, chunks=()):
    """The forward contenders at sequence length `T` (name -> `f(neuron, x0, u)`)."""
    fns = {
        "sequential": with_solver(lt.Sequential(check_stability=False)),
        "sequential_checked": with_solver(lt.Sequential()),
        "parallel": with_solver(lt.ParallelNewton()),
        "parallel_unchunked": with_solver(lt.ParallelNewton(chunk_size=T)),
        "parallel_assoc": with_solver(
            lt.ParallelNewton(recurrence=lt.AssociativeScan())
        ),
        "naive": lambda n, x0, u: naive_quasi_newton(n, x0, u)[0],
        "solve_auto": with_solver(lt.Auto()),
    }
    for c in chunks:
        fns[f"parallel_c{c}"] = with_solver(lt.ParallelNewton(chunk_size=c))
    return fns


def iterations(n, x0, u, naive=True):
    """The largest Newton iteration count over the batch (parallel, naive)."""
    par = jax.jit(
        jax.vmap(
            lambda x0, u: lt.solve(n, x0, u, solver=lt.ParallelNewton()).iterations
        )
    )
    nai = jax.jit(jax.vmap(lambda x0, u: naive_quasi_newton(n, x0, u)[1]))
    return int(jnp.max(par(x0, u))), int(jnp.max(nai(x0, u))) if naive else None


def run(T, D, batch, repeats, names=None, chunks=()):
    row = dict(T=T, D=D, batch=batch)
    if batch * T * D > ELEMENT_LIMIT:
        return [dict(row, contender="all", status="skipped: size")]
    n, x0, u = problem(T, D, batch)
    fns = {
        k: batched(f)
        for k, f in contenders(T, chunks).items()
        if names is None or k in names
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
        names = ["sequential", "sequential_checked", "parallel", "parallel_unchunked"]
        names += ["parallel_assoc", "naive", "solve_auto"]
        for name in names:
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
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument(
        "--chunks",
        type=positive,
        nargs="*",
        help="also time ParallelNewton(chunk_size=N) for each N",
    )
    chunk_args, rest = extra.parse_known_args(argv)
    chunks = tuple(chunk_args.chunks or ())
    columns = ["T", "D", "batch", "contender", "median_ms", "ratio_to_scan"]
    columns += ["iterations", "peak_mib", "status"]
    return sweep(
        __doc__.splitlines()[0],
        {"T": int, "D": int, "batch": int},
        QUICK,
        FULL,
        lambda args, T, D, batch: run(T, D, batch, args.repeats, chunks=chunks),
        "forward",
        plot,
        columns,
        rest,
    )


if __name__ == "__main__":
    main()
