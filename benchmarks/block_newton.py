"""Block Newton against dense DEER, quasi-DEER and `lax.scan` on FitzHugh-Nagumo
(a block-diagonal Jacobian of 2 x 2 blocks).

    nice python benchmarks/block_newton.py [--quick] [--T 4096 16384] [--budget 900]

D = 64 FitzHugh-Nagumo neurons (state_size 128, 2 x 2 blocks), 8 input channels,
standard-normal inputs, zero `x0`, Euler at dt = 0.1, float32, one sequence. The
contenders are `lt.solve(..., solver=...)` with

- `block`: `ParallelNewton()` (exact Newton on the 2 x 2 blocks: 2 JVPs a step);
- `dense`: `ParallelNewton(method="dense")` (DEER: the full 128 x 128 step
  Jacobian, 128 JVPs a step, a dense linear recurrence);
- `quasi`: `ParallelNewton(method="quasi")` (the Jacobian's diagonal only);
- `sequential`: `Sequential()` (a `lax.scan`, the reference).

Each is compiled once ahead of time; the wall time is the best of `--repeats`
calls after that (a configuration stops early once its share of `--budget` is
spent). `peak_mib` is XLA's buffer assignment of the compiled program
(`compiled.memory_analysis()`: arguments + outputs + temporaries; not the
process's resident memory). Every Newton solution is compared with the scan's.
Dense DEER at a T whose predicted time (its time at the previous T, scaled
linearly in T) exceeds `--dense-limit` seconds is skipped and recorded as such.

Prints a table per T and the ratios (dense / block, quasi / block, sequential /
block) measured in this run, and writes `results/block_newton.csv`.
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import compile_with_memory, fmt, machine, max_diff, parser, write_csv

import lrc_toolkit as lt


FULL = (4096, 16384, 65536)
QUICK = (1024, 4096)
N, P, DT = 64, 8, 0.1
SOLVERS = {
    "block": lt.ParallelNewton(),
    "dense": lt.ParallelNewton(method="dense"),
    "quasi": lt.ParallelNewton(method="quasi"),
    "sequential": lt.Sequential(),
}


def problem(T: int, seed: int = 0):
    k1, k2 = jr.split(jr.key(seed))
    neuron = lt.FitzHughNagumo(2 * N, P, dtype=jnp.float32, key=k1)
    inputs = jr.normal(k2, (T, P), jnp.float32)
    return neuron, jnp.zeros(2 * N, jnp.float32), inputs


def _program(solver, static):
    """`solve` jitted over the neuron's arrays (`static`: the rest of it)."""

    def f(params, x0, u):
        n = eqx.combine(params, static)
        return lt.solve(n, x0, u, solver=solver, dt=DT, throw=False)

    return jax.jit(f)


def measure(name, solver, args, repeats, budget_s):
    """Compile, then the best of `repeats` calls (at least one) within
    `budget_s`."""
    t0 = time.perf_counter()
    neuron, x0, inputs = args
    params, static = eqx.partition(neuron, eqx.is_array)
    args = (params, x0, inputs)
    compiled, memory = compile_with_memory(_program(solver, static), *args)
    compile_s = time.perf_counter() - t0
    times, start = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        sol = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    row = dict(
        solver=name,
        iterations="" if sol.iterations is None else int(sol.iterations),
        outcome=sol.outcome,
        best_ms=1e3 * min(times),
        rounds=len(times),
        compile_s=compile_s,
        **memory,
    )
    return row, sol


def run_T(T, args, budget_s, dense_estimate_s):
    neuron, x0, inputs = problem(T)
    call = (neuron, x0, inputs)
    rows, ref = [], None
    share = budget_s / len(SOLVERS)
    for name in ("sequential", "block", "quasi", "dense"):
        base = dict(T=T, N=N, state_size=2 * N, dt=DT)
        if name == "dense" and dense_estimate_s is not None:
            if dense_estimate_s > args.dense_limit:
                note = (
                    f"skipped: predicted {dense_estimate_s:.0f} s a call > "
                    f"--dense-limit {args.dense_limit:g} s"
                )
                rows.append(dict(base, solver=name, outcome=note))
                continue
        row, sol = measure(name, SOLVERS[name], call, args.repeats, share)
        if name == "sequential":
            ref = sol.states
        row["err_vs_scan"] = max_diff(sol.states, ref)
        rows.append(dict(base, **row))
    return rows


def ratios(rows):
    """`{T: {"dense/block": r, ...}}` from the measured best times."""
    out = {}
    for T in sorted({r["T"] for r in rows}):
        best = {r["solver"]: r.get("best_ms") for r in rows if r["T"] == T}
        b = best.get("block")
        out[T] = {
            f"{other}/block": best[other] / b
            for other in ("dense", "quasi", "sequential")
            if b and best.get(other)
        }
    return out


def main(argv=None, csv_name: str = "block_newton.csv") -> list[dict]:
    """Run the grid; returns the rows (also written to `--out`/`csv_name`)."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="*", help="override the T grid")
    p.add_argument(
        "--budget", type=float, default=900.0, help="seconds for the whole run"
    )
    p.add_argument(
        "--dense-limit",
        type=float,
        default=60.0,
        help="skip dense DEER when one call is predicted to take longer (s)",
    )
    p.set_defaults(repeats=3)
    args = p.parse_args(argv)
    grid = tuple(args.T) if args.T else (QUICK if args.quick else FULL)
    print(machine())
    rows, start, dense_estimate = [], time.perf_counter(), None
    columns = [
        "T",
        "solver",
        "iterations",
        "outcome",
        "best_ms",
        "rounds",
        "compile_s",
        "peak_mib",
        "err_vs_scan",
    ]
    for i, T in enumerate(sorted(grid)):
        left = args.budget - (time.perf_counter() - start)
        new = run_T(T, args, left / (len(grid) - i), dense_estimate)
        rows += new
        print(fmt(new, columns), flush=True)
        dense = [r for r in new if r["solver"] == "dense" and "best_ms" in r]
        if dense:
            next_T = sorted(grid)[i + 1] if i + 1 < len(grid) else T
            dense_estimate = dense[0]["best_ms"] / 1e3 * next_T / T
        write_csv(args.out / csv_name, rows)
    for T, r in ratios(rows).items():
        text = ", ".join(f"{k} = {v:.1f}x" for k, v in r.items())
        print(f"T = {T}: {text}")
    target = ratios(rows).get(16384, {}).get("dense/block")
    if target is not None:
        met = "met" if target >= 10 else "not met"
        print(
            f"target block Newton >= 10x dense DEER at T = 16384: {target:.1f}x ({met})"
        )
    return rows


if __name__ == "__main__":
    main()
