"""(e): the Diffrax ODE view against the discrete scan. Euler and Tsit5, one
constant step per input sample and adaptive (PID) steps, inputs held constant on
each sample interval.

    python benchmarks/ode.py [--quick] [--repeats 5]

Timed interleaved after compilation. Diffrax's Euler with one step per interval is
the scan's recurrence, so its states are checked against `lax.scan` on every timed
call; the Tsit5 variants integrate the ODE itself (a different, more accurate
answer) and are checked against each other; their distance to the scan (the Euler
discretisation error at dt = 1) is reported. Writes `results/ode.csv` and
`results/ode.png`.
"""

import functools

import diffrax
from _common import (
    batched,
    machine,
    max_diff,
    median_ms,
    problem,
    sweep,
    time_interleaved,
)

import lrc_toolkit as lt


FULL = dict(T=(1000, 4000, 17984), D=(64,))
QUICK = dict(T=(1000,), D=(64,))
PID = diffrax.PIDController(rtol=1e-4, atol=1e-6)


def contenders(T):
    # x0 at t = 0, one unit step per sample: dt = 1 (the ODE's ts are cumsum(dt)).
    ode = lambda **kw: (
        lambda n, x0, u: lt.solve(n, x0, u, dt=1.0, solver=lt.ODE(**kw)).states
    )
    return {
        "scan": lambda n, x0, u: (
            lt.solve(n, x0, u, solver=lt.Sequential(check_stability=False)).states
        ),
        "ode_euler_constant": ode(solver=diffrax.Euler()),
        "ode_tsit5_constant": ode(solver=diffrax.Tsit5()),
        "ode_tsit5_adaptive": ode(solver=diffrax.Tsit5(), stepsize_controller=PID),
    }


def run(T, D, repeats):
    n, x0, u = problem(T, D, 1)
    fns = {k: batched(f) for k, f in contenders(T).items()}
    ref = fns["scan"](n, x0, u)
    tsit = fns["ode_tsit5_adaptive"](n, x0, u)

    def check(name, out):
        if name in ("scan", "ode_euler_constant"):
            err, tol = max_diff(out, ref), 1e-5
        else:
            err, tol = max_diff(out, tsit), 1e-2
        if not err <= tol:
            raise AssertionError(f"{name} off by {err:.2e} at T={T}")

    times = time_interleaved(
        {k: functools.partial(f, n, x0, u) for k, f in fns.items()}, check, repeats
    )
    base = median_ms(times["scan"])
    return [
        dict(
            T=T,
            D=D,
            contender=name,
            median_ms=median_ms(ts),
            ratio_to_scan=median_ms(ts) / base,
            max_abs_diff_to_scan=max_diff(fns[name](n, x0, u), ref),
        )
        for name, ts in times.items()
    ]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name in dict.fromkeys(r["contender"] for r in rows):
        pts = sorted((r["T"], r["median_ms"]) for r in rows if r["contender"] == name)
        ax.loglog(*zip(*pts), "o-", label=name)
    ax.set_xlabel("T")
    ax.set_ylabel("forward time (ms, median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"ODE view vs scan, LRC float32 — {machine()}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    return sweep(
        __doc__.splitlines()[0],
        {"T": int, "D": int},
        QUICK,
        FULL,
        lambda args, T, D: run(T, D, args.repeats),
        "ode",
        plot,
        argv=argv,
    )


if __name__ == "__main__":
    main()
