"""Where the time of `ParallelNewton`'s forward pass (and of its fixed-point
gradient) goes: the drive (input-only terms), one linearisation, one linear
recurrence, one whole Newton sweep (chunked and unchunked), the bookkeeping, and the
full solves, against `lax.scan`.

    python benchmarks/profile_newton.py [--T 17984] [--D 64] [--chunks 128 256 512
        1024 2048] [--repeats 9] [--out benchmarks/results]

Every piece is its own jitted function of the same problem (LRC, D = P, float32,
batch 1, the benchmarks' `problem`), timed interleaved with all the others in one
process (the machine is shared: only ratios to `lax.scan` measured in the same
round are meaningful). Prints a breakdown table and writes
`<out>/profile_newton.csv`.
"""

import argparse
import functools
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import (
    KEY_D,
    KEY_T,
    machine,
    median_ms,
    naive_quasi_newton,
    positive,
    problem,
    RESULTS,
    time_interleaved,
    write_csv,
)

import lrc_toolkit as lt
from lrc_toolkit._solve._linearise import check_structure, drives, linearise, shifted
from lrc_toolkit._solve.newton import _Sweep


def pieces(neuron, x0, u, chunks, iterations):
    """name -> (zero-argument jitted call, description)."""
    T, D = u.shape[0], x0.shape[0]
    euler = lt.Euler()
    dt = jnp.ones((T,), u.dtype)
    scan = lt.Sequential(check_stability=False)
    states = lt.solve(neuron, x0, u, solver=scan).states
    d = drives(neuron, u)
    prev = shifted(x0, states)
    atol = rtol = jnp.asarray(1e-5, u.dtype)
    recurrence = lt.SequentialScan()
    jac, values = linearise(neuron, euler, prev, states, d, dt, "newton")[::-1]
    b = values - jac * prev
    w = jr.normal(jr.key(1), (T, D), u.dtype)

    def solve_with(solver):
        return eqx.filter_jit(lambda n, x0, u: lt.solve(n, x0, u, solver=solver).states)

    def grad_with(solver):
        loss = lambda n, u: jnp.sum(w * lt.solve(n, x0, u, solver=solver).states)
        return eqx.filter_jit(eqx.filter_grad(loss))

    def sweep(chunk):
        """One Newton sweep on arrays padded to whole chunks (as in the loop)."""
        s = _Sweep(neuron, euler, recurrence, "newton", None, chunk)
        C, n = s.layout(T)
        dp, dtp = s.pad((d, dt), T)
        valid = jnp.arange(n * C) < T
        f = eqx.filter_jit(lambda X: s(x0, X, dp, dtp, valid, atol, rtol)[0])
        return functools.partial(f, s.pad(states, T))

    def plain_sweep(X):
        """Linearise + Newton offsets + recurrence, no convergence bookkeeping."""
        p = shifted(x0, X)
        values, a = linearise(neuron, euler, p, X, d, dt, "newton")
        return recurrence(a, (values - a * p).at[0].add(a[0] * x0))

    def adjoint_pieces(n, X):
        """The backward pass's parts on their own: the drive again, the
        linearisation, the diagonal guard, the reverse recurrence, the VJP."""
        p = shifted(x0, X)
        dd = drives(n, u)
        _, a = linearise(n, euler, p, X, dd, dt, "newton")
        return a, dd

    fns = {
        "lax.scan (Sequential(check_stability=False))": (
            functools.partial(solve_with(scan), neuron, x0, u),
            "the baseline",
        ),
        "Sequential() (stability check)": (
            functools.partial(solve_with(lt.Sequential()), neuron, x0, u),
            "lax.scan + one JVP per step",
        ),
        "drive (input-only terms)": (
            functools.partial(jax.jit(drives), neuron, u),
            "once per solve",
        ),
        "linearise (T steps, one JVP)": (
            functools.partial(
                jax.jit(lambda p, X: linearise(neuron, euler, p, X, d, dt, "newton")),
                prev,
                states,
            ),
            "per iteration, unchunked",
        ),
        "recurrence (sequential scan)": (
            functools.partial(jax.jit(recurrence), jac, b),
            "per iteration, unchunked",
        ),
        "sweep without bookkeeping, unchunked": (
            functools.partial(jax.jit(plain_sweep), states),
            "linearise + offsets + scan",
        ),
        "sweep, unchunked (chunk_size=T)": (
            sweep(T),
            "one Newton iteration with the convergence summaries",
        ),
    }
    for c in chunks:
        fns[f"sweep, chunk_size={c}"] = (
            sweep(c),
            "one Newton iteration, cache-blocked",
        )
    fns["ParallelNewton(), unchunked: full solve"] = (
        functools.partial(solve_with(lt.ParallelNewton(chunk_size=T)), neuron, x0, u),
        f"drive + {iterations} sweeps + validation",
    )
    for c in chunks:
        fns[f"ParallelNewton(chunk_size={c}): full solve"] = (
            functools.partial(
                solve_with(lt.ParallelNewton(chunk_size=c)), neuron, x0, u
            ),
            f"drive + {iterations} sweeps + validation",
        )
    fns["naive reference-style quasi-DEER"] = (
        functools.partial(
            jax.jit(lambda n, x0, u: naive_quasi_newton(n, x0, u)[0]), neuron, x0, u
        ),
        "full Jacobians, inputs recomputed every iteration",
    )
    fns["gradient: autodiff through lax.scan"] = (
        functools.partial(
            grad_with(lt.Sequential(autodiff=True, check_stability=False)), neuron, u
        ),
        "forward + backward",
    )
    fns["gradient: ParallelNewton() fixed-point VJP"] = (
        functools.partial(grad_with(lt.ParallelNewton()), neuron, u),
        "forward + backward",
    )
    fns["adjoint: drive + linearise"] = (
        functools.partial(jax.jit(adjoint_pieces), neuron, states),
        "recomputed in the backward pass",
    )
    fns["adjoint: diagonal guard"] = (
        functools.partial(
            jax.jit(lambda a: check_structure(neuron, euler, prev, states, d, dt, a)),
            jac,
        ),
        "one JVP on <= 256 steps",
    )
    fns["adjoint: reverse recurrence"] = (
        functools.partial(jax.jit(lambda a, g: recurrence(a, g, reverse=True)), jac, w),
        "one sequential scan",
    )

    def step_vjp(n, lam):
        def all_steps(n, p, u):
            return jax.vmap(lambda p, dd, h: euler.step(n, p, dd, h))(
                p, drives(n, u), dt
            )

        _, vjp = eqx.filter_vjp(all_steps, n, prev, u)
        return vjp(lam)

    fns["adjoint: VJP of all steps"] = (
        functools.partial(eqx.filter_jit(step_vjp), neuron, w),
        "parameters, inputs, x0 cotangents",
    )
    return fns


def run(T, D, chunks, repeats):
    neuron, x0, u = problem(T, D, 1)
    x0, u = x0[0], u[0]
    iterations = int(
        jax.jit(
            lambda n, x0, u: lt.solve(n, x0, u, solver=lt.ParallelNewton()).iterations
        )(neuron, x0, u)
    )
    fns = pieces(neuron, x0, u, chunks, iterations)
    times = time_interleaved(
        {k: f for k, (f, _) in fns.items()}, lambda name, out: None, repeats
    )
    base = median_ms(times["lax.scan (Sequential(check_stability=False))"])
    rows = [
        dict(
            T=T,
            D=D,
            piece=name,
            median_ms=median_ms(ts),
            min_ms=1e3 * min(ts),
            ratio_to_scan=median_ms(ts) / base,
            what=fns[name][1],
        )
        for name, ts in times.items()
    ]
    return rows, iterations


def breakdown(rows, iterations, chunks) -> str:
    ms = {r["piece"]: r["median_ms"] for r in rows}
    base = ms["lax.scan (Sequential(check_stability=False))"]
    lines = [
        "| piece | ms (median) | × lax.scan | what |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['piece']} | {r['median_ms']:.2f} | {r['ratio_to_scan']:.2f} | "
        f"{r['what']} |"
        for r in rows
    ]
    lines += ["", f"Newton iterations: {iterations}."]
    for label, sweep_key, solve_key in [
        (
            "unchunked",
            "sweep, unchunked (chunk_size=T)",
            "ParallelNewton(), unchunked: full solve",
        ),
        *[
            (
                f"chunk_size={c}",
                f"sweep, chunk_size={c}",
                f"ParallelNewton(chunk_size={c}): full solve",
            )
            for c in chunks
        ],
    ]:
        drive, sweep, total = (
            ms["drive (input-only terms)"],
            ms[sweep_key],
            ms[solve_key],
        )
        rest = total - drive - iterations * sweep
        lines.append(
            f"- {label}: total {total:.1f} ms = drive {drive:.1f} + {iterations} × "
            f"sweep {sweep:.1f} + rest {rest:.1f} (validation, loop, copies); "
            f"{total / base:.2f}× lax.scan"
        )
    lin, rec = ms["linearise (T steps, one JVP)"], ms["recurrence (sequential scan)"]
    plain = ms["sweep without bookkeeping, unchunked"]
    book = ms["sweep, unchunked (chunk_size=T)"] - plain
    lines.append(
        f"- one unchunked sweep: linearise {lin:.1f} + recurrence {rec:.1f} "
        f"(+ offsets, fused: {plain:.1f} in all) + convergence bookkeeping "
        f"{book:.1f} ms"
    )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=positive, default=KEY_T)
    p.add_argument("--D", type=positive, default=KEY_D)
    p.add_argument(
        "--chunks", type=positive, nargs="*", default=[128, 256, 512, 1024, 2048]
    )
    p.add_argument("--repeats", type=positive, default=9)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    print(machine())
    rows, iterations = run(args.T, args.D, tuple(args.chunks), args.repeats)
    text = breakdown(rows, iterations, tuple(args.chunks))
    print(text)
    write_csv(args.out / "profile_newton.csv", rows)
    return text


if __name__ == "__main__":
    main()
