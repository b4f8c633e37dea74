"""Shared helpers of the benchmark scripts: problems, timing, agreement, memory, CSV."""

import argparse
import csv
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import lrc_toolkit as lt


RESULTS = Path(__file__).resolve().parent / "results"
KEY_T, KEY_D = 17984, 64  # EigenWorms' length, the paper's state size


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small subset of the grid")
    p.add_argument(
        "--repeats", type=positive, default=7, help="timed rounds per config"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return p


def problem(T: int, D: int, batch: int, *, scale: float = 1.0, seed: int = 0):
    """An LRC with D = P, float32, reference initialisation (parameters optionally
    multiplied by `scale`), standard-normal inputs `(batch, T, P)`, zero `x0`."""
    k1, k2 = jr.split(jr.key(seed))
    neuron = lt.LRC(D, D, dtype=jnp.float32, key=k1)
    if scale != 1.0:
        neuron = jax.tree.map(lambda p: p * jnp.float32(scale), neuron)
    inputs = jr.normal(k2, (batch, T, D), jnp.float32)
    x0 = jnp.zeros((batch, D), jnp.float32)
    return neuron, x0, inputs


def batched(f: Callable) -> Callable:
    """`f(neuron, x0, inputs)` on one sequence -> jitted over a batch."""
    return jax.jit(jax.vmap(f, in_axes=(None, 0, 0)))


def naive_quasi_newton(neuron, x0, inputs, *, tol=1e-4, max_iters=None):
    """The reference implementation's parallel evaluation, written its way: every
    Newton iteration recomputes the input terms (calls `vector_field(x, u)` on raw
    inputs), builds each step's full D x D Jacobian with `jax.jacfwd`, takes its
    diagonal, and solves the linear recurrence with `jax.lax.associative_scan`.
    Zero initial guess; stops when max |dx| < `tol` (1e-4 in float32 as there)."""
    T, D = inputs.shape[0], x0.shape[0]
    max_iters = T if max_iters is None else max_iters

    def phi(x, u):
        return x + neuron.vector_field(x, u)

    def body(carry):
        k, X, _ = carry
        prev = jnp.concatenate([x0[None], X[:-1]])
        values = jax.vmap(phi)(prev, inputs)
        jac = jax.vmap(jax.jacfwd(phi))(prev, inputs)
        a = jnp.diagonal(jac, axis1=-2, axis2=-1)
        b = values - a * prev
        a = a.at[0].set(0.0)
        b = b.at[0].set(values[0])
        _, X_new = jax.lax.associative_scan(
            lambda l, r: (r[0] * l[0], r[0] * l[1] + r[1]), (a, b)
        )
        return k + 1, X_new, jnp.max(jnp.abs(X_new - X))

    def cond(carry):
        k, _, err = carry
        return (k < max_iters) & (err >= tol)

    init = (jnp.array(0), jnp.zeros((T, D), x0.dtype), jnp.array(jnp.inf, x0.dtype))
    k, X, _ = jax.lax.while_loop(cond, body, init)
    return X, k


def compile_with_memory(f: Callable, *args) -> tuple[Callable, dict[str, float]]:
    """Compile the jitted `f` for `args` once: returns the compiled executable (call
    it with the same `args`) and XLA's buffer assignment for it (see
    `compiled_memory`)."""
    compiled = f.lower(*args).compile()
    m = compiled.memory_analysis()
    mib = 2.0**20
    if m is None:
        return compiled, {"peak_mib": float("nan"), "temp_mib": float("nan")}
    peak = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )
    return compiled, {"peak_mib": peak / mib, "temp_mib": m.temp_size_in_bytes / mib}


def compiled_memory(f: Callable, *args) -> dict[str, float]:
    """XLA's buffer assignment for the jitted `f(*args)` (CPU: exact for the compiled
    program, excludes the Python process and allocator slack). `peak_mib` is
    arguments + outputs + temporaries - aliased, in MiB."""
    return compile_with_memory(f, *args)[1]


def time_interleaved(
    contenders: dict[str, Callable[[], object]],
    check: Callable[[str, object], None],
    repeats: int,
    budget_s: float | None = None,
) -> dict[str, list[float]]:
    """Call every contender once untimed (compile + warm-up), then `repeats` rounds,
    each timing every contender once in turn (blocking on the result) and checking
    its output with `check(name, output)`. Returns seconds per call.

    With `budget_s`, rounds stop early (after at least one) once another round
    would take the time since the first round past `budget_s`, so the lists can be
    shorter than `repeats`."""
    for name, f in contenders.items():
        check(name, jax.block_until_ready(f()))
    times = {name: [] for name in contenders}
    start = time.perf_counter()
    for k in range(repeats):
        for name, f in contenders.items():
            t0 = time.perf_counter()
            out = jax.block_until_ready(f())
            times[name].append(time.perf_counter() - t0)
            check(name, out)
        elapsed = time.perf_counter() - start
        if budget_s is not None and elapsed * (k + 2) / (k + 1) > budget_s:
            break
    return times


def median_ms(ts: list[float]) -> float:
    return 1e3 * statistics.median(ts)


def max_diff(a, b) -> float:
    leaves = jax.tree.leaves(eqx.filter(a, eqx.is_inexact_array))
    others = jax.tree.leaves(eqx.filter(b, eqx.is_inexact_array))
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(leaves, others))


def machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{jax.default_backend()} ({dev.device_kind}), {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, jax {jax.__version__}"
    )


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")


def fmt(rows: list[dict], keys: list[str]) -> str:
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def sweep(
    description: str,
    axes: dict[str, type],
    quick: dict,
    full: dict,
    run: Callable[..., list[dict]],
    name: str,
    plot: Callable[[list[dict], Path], None],
    columns: list[str] | None = None,
    argv=None,
) -> list[dict]:
    """The common `main` of the grid benchmarks: parse the shared options plus one
    `--<axis>` override per grid axis, run `run(args, **point)` (a list of rows) at
    every point of the grid in order, print each point's rows, then write
    `<out>/<name>.csv` and (unless `--no-plot`) `<out>/<name>.png`."""
    p = parser(description)
    for axis, kind in axes.items():
        p.add_argument(
            f"--{axis}", type=kind, nargs="*", help=f"override the {axis} grid"
        )
    args = p.parse_args(argv)
    grid = dict(quick if args.quick else full)
    for axis in axes:
        if getattr(args, axis):
            grid[axis] = tuple(getattr(args, axis))
    print(machine())
    rows = []
    for point in itertools.product(*(grid[axis] for axis in axes)):
        new = run(args, **dict(zip(axes, point)))
        rows += new
        print(fmt(new, columns or list(new[0])), flush=True)
    write_csv(args.out / f"{name}.csv", rows)
    if not args.no_plot:
        plot(rows, args.out / f"{name}.png")
    return rows
