"""The linear recurrence x_t = a_t * x_{t-1} + b_t (one Newton step's linear solve):
`jax.lax.associative_scan` vs a sequential `lax.scan` vs a blocked scan (sequential
inside blocks, vectorised across them, then a scan over the block summaries and a
carry fix-up), on the default backend.

    python benchmarks/scan.py [--quick] [--repeats 9]

This measurement picks `linear_recurrence(scan="auto")`. Every timed output is
checked against the sequential scan. Writes `results/scan.csv` and
`results/scan.png`.
"""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
from _common import (
    machine,
    max_diff,
    median_ms,
    sweep,
    time_interleaved,
)

import lrc_toolkit as lt


FULL = dict(T=(1000, 4000, 17984, 65536), D=(16, 64, 256))
QUICK = dict(T=(1000, 17984), D=(64,))


def blocked(a, b, block=128):
    """Sequential inside blocks of `block` steps (all blocks at once), then a scan
    over the block summaries, then each block's carry applied."""
    T, D = a.shape
    nb = -(-T // block)
    pad = nb * block - T
    a = jnp.pad(a, ((0, pad), (0, 0)), constant_values=1)
    b = jnp.pad(b, ((0, pad), (0, 0)))
    a = a.reshape(nb, block, D).swapaxes(0, 1)
    b = b.reshape(nb, block, D).swapaxes(0, 1)

    def inner(c, ab):
        A, x = c
        A, x = ab[0] * A, ab[0] * x + ab[1]
        return (A, x), (A, x)

    ones, zeros = jnp.ones_like(a[0]), jnp.zeros_like(b[0])
    _, (cum_a, local) = jax.lax.scan(inner, (ones, zeros), (a, b))
    carry_in = lt.linear_recurrence(cum_a[-1], local[-1], scan="sequential")
    carry_in = jnp.concatenate([jnp.zeros_like(carry_in[:1]), carry_in[:-1]])
    x = local + cum_a * carry_in[None]
    return x.swapaxes(0, 1).reshape(nb * block, D)[:T]


CONTENDERS = {
    "sequential": functools.partial(lt.linear_recurrence, scan="sequential"),
    "associative": functools.partial(lt.linear_recurrence, scan="associative"),
    "blocked128": blocked,
    "auto": lt.linear_recurrence,
}


def run(T, D, repeats):
    ka, kb = jr.split(jr.key(0))
    a = jr.uniform(ka, (T, D), jnp.float32, 0.5, 1.0)
    b = jr.normal(kb, (T, D), jnp.float32)
    fns = {k: jax.jit(f) for k, f in CONTENDERS.items()}
    ref = fns["sequential"](a, b)

    def check(name, out):
        err = max_diff(out, ref)
        if not err <= 1e-4:
            raise AssertionError(f"{name} off by {err:.2e}")

    times = time_interleaved(
        {k: functools.partial(f, a, b) for k, f in fns.items()}, check, repeats
    )
    base = median_ms(times["sequential"])
    return [
        dict(T=T, D=D, contender=k, median_ms=median_ms(ts), ratio=median_ms(ts) / base)
        for k, ts in times.items()
    ]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ds = sorted({r["D"] for r in rows})
    fig, axes = plt.subplots(1, len(Ds), figsize=(4 * len(Ds), 3.4), squeeze=False)
    for ax, D in zip(axes[0], Ds):
        for name in CONTENDERS:
            pts = sorted(
                (r["T"], r["median_ms"])
                for r in rows
                if (r["D"], r["contender"]) == (D, name)
            )
            ax.loglog(*zip(*pts), "o-", label=name)
        ax.set_title(f"D={D}")
        ax.set_xlabel("T")
        ax.set_ylabel("ms (median)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Linear recurrence — {machine()}", fontsize=9)
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
        "scan",
        plot,
        argv=argv,
    )


if __name__ == "__main__":
    main()
