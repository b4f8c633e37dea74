"""Streaming inference: the latency of one `LrcSSM.step` (jit-compiled), per sample,
at the sizes of the paper's presets, against the whole-sequence forward per sample.

    python benchmarks/streaming.py [--repeats 200] [--out benchmarks/results]

Each step is checked against `per_step` on the same sequence (the outputs agree to
float32 rounding); the CSV has one row per preset and solver.
"""

import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import fmt, machine, parser, positive, write_csv

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM
from lrc_toolkit.training import DEFAULT_PRESET, PRESETS


SIZES = {
    "default (H 32, D 32, 2 blocks)": DEFAULT_PRESET,
    "SCP1 (H 64, D 16, 2 blocks)": PRESETS["SelfRegulationSCP1"],
    "Ethanol (H 128, D 16, 2 blocks)": PRESETS["EthanolConcentration"],
    "EigenWorms (H 64, D 16, 4 blocks)": PRESETS["EigenWorms"],
}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=positive, default=256, help="samples per stream")
    args = p.parse_args()
    repeats = 20 if args.quick else args.repeats
    rows = []
    for label, preset in SIZES.items():
        model = LrcSSM(6, 4, **preset.model_kwargs(), dtype=jnp.float32, key=jr.key(0))
        x = jr.normal(jr.key(1), (args.steps, 6), jnp.float32)
        # The step is the same recurrence whichever solver the model holds.
        step = eqx.filter_jit(model.step)
        wholes = {
            name: eqx.filter_jit(
                lambda x, solver=solver: eqx.tree_at(
                    lambda m: m.solver, model, solver
                ).per_step(x)
            )
            for name, solver in (
                ("sequential", lt.Sequential()),
                ("parallel", lt.ParallelNewton()),
            )
        }
        reference = wholes["sequential"](x)
        state = model.init_state()
        outs = []
        for t in range(args.steps):  # also compiles
            state, out = step(state, x[t])
            outs.append(out)
        error = float(jnp.max(jnp.abs(jnp.stack(outs) - reference)))
        state = model.init_state()
        times = []
        for t in range(repeats):
            t0 = time.perf_counter()
            state, out = step(state, x[t % args.steps])
            jax.block_until_ready(out)
            times.append(time.perf_counter() - t0)
        row = {
            "preset": label,
            "step_median_us": 1e6 * statistics.median(times),
            "step_p90_us": 1e6 * statistics.quantiles(times, n=10)[-1],
        }
        for name, whole in wholes.items():
            jax.block_until_ready(whole(x))
            t0 = time.perf_counter()
            for _ in range(5):
                jax.block_until_ready(whole(x))
            row[f"whole_{name}_us_per_sample"] = (
                1e6 * (time.perf_counter() - t0) / 5 / args.steps
            )
        row["max_abs_diff_vs_per_step"] = error
        rows.append(row)
        print(fmt(rows[-1:], list(rows[-1])))
    print(f"\n{machine()}\n")
    print(fmt(rows, list(rows[0])))
    write_csv(args.out / "streaming.csv", rows)


if __name__ == "__main__":
    main()
