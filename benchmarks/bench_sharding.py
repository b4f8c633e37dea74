"""Time vs number of devices: the sequence-parallel solve and a data-parallel step.

Each device count runs in its own subprocess, because JAX fixes the number of
(forced host) devices when it starts:

    python benchmarks/bench_sharding.py                 # 1, 2, 4 CPU devices
    python benchmarks/bench_sharding.py --devices 1 2 --quick

Writes `benchmarks/results/sharding.csv` with one row per (devices, task):

- `solve_parallel`: `ParallelNewton()` on one device (baseline, 1 device only);
- `sharded forward`: `ParallelNewton(recurrence=ShardedScan(mesh))`, time axis over
  all devices;
- `sharded forward+grad`: the same with the gradient of a sum of the states;
- `data-parallel step`: one Adam step of an encoder + LRC + decoder model, the
  batch split over all devices, parameters replicated.

On a CPU, `--xla_force_host_platform_device_count` splits the *same cores* into
virtual devices: expect no speed-up there (the numbers show the overhead of
partitioning and communication). Real gains need several accelerators or hosts.
"""

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = ["devices", "task", "T", "D", "batch", "median_s", "min_s", "iterations"]


def _time(fn, repeats):
    import jax

    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def worker(n: int, T: int, D: int, batch: int, train_T: int, repeats: int) -> None:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import optax

    import lrc_toolkit as lt
    import lrc_toolkit.distributed as dist

    assert jax.device_count() == n, (jax.device_count(), n)
    rows = []

    def row(task, T, batch, times, iterations=""):
        rows.append(
            dict(
                devices=n,
                task=task,
                T=T,
                D=D,
                batch=batch,
                median_s=f"{times[0]:.5f}",
                min_s=f"{times[1]:.5f}",
                iterations=iterations,
            )
        )

    # --- sequence parallel: one long sequence ---------------------------------
    mesh = jax.make_mesh((n,), ("time",), axis_types=(jax.sharding.AxisType.Auto,))
    k1, k2 = jr.split(jr.key(0))
    neuron = lt.LRC(D, D, dtype=jnp.float32, key=k1)
    x0 = jnp.zeros(D, jnp.float32)
    inputs = jr.normal(k2, (T, D), jnp.float32)
    sharded_solver = lt.ParallelNewton(recurrence=lt.ShardedScan(mesh, "time"))
    sharded = eqx.filter_jit(lambda n_, x, u: lt.solve(n_, x, u, solver=sharded_solver))
    iterations = int(sharded(neuron, x0, inputs).iterations)
    if n == 1:
        single = eqx.filter_jit(
            lambda n_, x, u: lt.solve(n_, x, u, solver=lt.ParallelNewton())
        )
        row("solve_parallel", T, 1, _time(lambda: single(neuron, x0, inputs), repeats))
    row(
        "sharded forward",
        T,
        1,
        _time(lambda: sharded(neuron, x0, inputs), repeats),
        iterations,
    )
    grad = eqx.filter_jit(
        eqx.filter_grad(
            lambda n_, x, u: jnp.sum(lt.solve(n_, x, u, solver=sharded_solver).states)
        )
    )
    row("sharded forward+grad", T, 1, _time(lambda: grad(neuron, x0, inputs), repeats))

    # --- data parallel: one training step on a batch -----------------------------
    class Model(eqx.Module):
        encoder: eqx.nn.Linear
        neuron: lt.LRC
        decoder: eqx.nn.Linear

        def __call__(self, u):
            states = lt.solve(
                self.neuron,
                jnp.zeros(D, u.dtype),
                jax.vmap(self.encoder)(u),
                solver=lt.ParallelNewton(),
            ).states
            return self.decoder(jnp.mean(states, axis=0))

    k1, k2, k3, k4 = jr.split(jr.key(1), 4)
    model = Model(
        eqx.nn.Linear(8, D, dtype=jnp.float32, key=k1),
        lt.LRC(D, D, dtype=jnp.float32, key=k2),
        eqx.nn.Linear(D, 2, dtype=jnp.float32, key=k3),
    )
    optimiser = optax.adam(1e-3)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss_fn = lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimiser.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state, loss

    data_mesh = dist.data_mesh()
    model, opt_state = dist.replicate((model, opt_state), data_mesh)
    x = jr.normal(k4, (batch, train_T, 8), jnp.float32)
    y = jnp.zeros((batch, 2), jnp.float32)
    x, y = dist.shard_batch((x, y), data_mesh)
    row(
        "data-parallel step",
        train_T,
        batch,
        _time(lambda: step(model, opt_state, x, y), repeats),
    )
    for r in rows:
        print("ROW " + json.dumps(r), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--T", type=int, default=16384, help="sequence length (solve)")
    p.add_argument("--D", type=int, default=64, help="state size")
    p.add_argument("--batch", type=int, default=16, help="batch (train step)")
    p.add_argument("--train-T", type=int, default=512, help="length (train step)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="T=2048, 3 repeats")
    p.add_argument("--out", type=Path, default=RESULTS / "sharding.csv")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.T, args.repeats = 2048, 3
    if args.worker is not None:
        worker(args.worker, args.T, args.D, args.batch, args.train_T, args.repeats)
        return
    rows = []
    for n in args.devices:
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
        )
        cmd = [sys.executable, __file__, "--worker", str(n)]
        for name in ("T", "D", "batch", "train_T", "repeats"):
            cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{n} devices failed:\n{out.stderr[-3000:]}")
        for line in out.stdout.splitlines():
            if line.startswith("ROW "):
                rows.append(json.loads(line[4:]))
                r = rows[-1]
                print(
                    f"{r['devices']} device(s)  {r['task']:<22} T={r['T']:<6} "
                    f"batch={r['batch']:<3} median {float(r['median_s']) * 1e3:9.1f} ms"
                    + (
                        f"  ({r['iterations']} Newton iterations)"
                        if r["iterations"]
                        else ""
                    ),
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        f.write(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
            "cores; forced host devices share them\n"
        )
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
