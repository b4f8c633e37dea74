"""The GPU suite (issue 12): the parallel solver against `lax.scan`, forward and
forward + gradient, and the LrcSSM training step of three of the paper's presets,
on the first device JAX sees.

    bash benchmarks/gpu.sh        # = python benchmarks/gpu.py --out benchmarks/results/gpu
    python benchmarks/gpu.py --smoke --out /tmp/gpu    # tiny sizes, ~1 min of CPU

**Solver grid.** An LRC with D = P in {64, 256}, T in {4096, 16384, 65536, 262144},
batch 16 (vmapped), float32 (`_common.problem`): `lt.solve(...,
solver=lt.ParallelNewton())` (Newton + associative scan) against
`solver=lt.Sequential(check_stability=False)` (a plain `lax.scan`, the reference);
both differentiate at the fixed point, and the gradient is also timed by autodiff
through the scan (`Sequential(autodiff=True, check_stability=False)`). Each program is compiled ahead of time once (XLA's
memory analysis of that compilation is `peak_mib`), the contenders are timed
interleaved in one process (`_common.time_interleaved`, medians), every timed
output is compared with the reference's, and the parallel solver's Newton
iterations (the largest over the batch) are recorded. The gradient is that of
mean(sum(w * states)) with respect to the neuron and the inputs.

**Training.** One jit-compiled step (forward + gradient + `optax` clip by global
norm 1 + Adam) of `lrc_toolkit.models.LrcSSM` at batch 4 on random data shaped like
SelfRegulationSCP1 (T 896, 6 channels, 2 classes), EthanolConcentration (1751, 3,
4) and EigenWorms (17984, 6, 5), with each preset's H, D, blocks and learning rate,
parallel against sequential, in seconds per 1000 steps (rounds of a few steps,
interleaved). The paper's A100 figures are in the rows for reference.

**Time guard.** The whole run stays within `--budget` seconds (default 420, of
which 60 % for the solver grid). Configurations run from the smallest to the
largest; one whose time (predicted from the previous, smaller one of the same kind:
compile time plus the calls scaled linearly in size) does not fit in what is left,
or whose compiled memory exceeds the device's limit, is recorded as
"skipped: time ..." or "skipped: OOM ..."; a configuration that runs out of device
memory anyway is recorded as "skipped: OOM"; timing rounds stop early once a
configuration's share (`--config-budget`) is spent (`rounds` says how many ran).

**Block Newton.** `benchmarks/block_newton.py` on 64 FitzHugh-Nagumo neurons
(2 x 2 blocks) at T in {4096, 16384, 65536}: block Newton against dense DEER,
quasi-DEER and the scan, 60 s on top of the budget (`block_newton_<device>.csv`).

Writes `solver_<device>.csv`, `training_<device>.csv`, `gpu_<device>.png` and
`summary_<device>.md` to `--out` (the CSVs after every configuration), where
`<device>` is `jax.devices()[0].device_kind` in lower case with dashes; prints the
summary, with the issue's targets marked met / not met, at the end.
"""

import argparse
import dataclasses
import functools
import itertools
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from _common import (
    batched,
    compile_with_memory,
    fmt,
    machine,
    max_diff,
    positive,
    problem,
    time_interleaved,
    write_csv,
)

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM
from lrc_toolkit.training import PRESETS


# ----------------------------------------------------------------------------------
# What is measured


@dataclasses.dataclass(frozen=True)
class Task:
    """A training-step configuration: a preset's model on data of a dataset's shape."""

    name: str
    hidden_size: int
    state_size: int
    num_blocks: int
    length: int
    channels: int
    classes: int
    learning_rate: float
    paper_a100: float  # the paper's seconds per 1000 steps on an A100


def preset_task(name: str, length: int, channels: int, classes: int, paper: float):
    p = PRESETS[name]
    return Task(
        name,
        p.hidden_size,
        p.state_size,
        p.num_blocks,
        length,
        channels,
        classes,
        p.train.learning_rate,
        paper,
    )


SHORT = {"SelfRegulationSCP1": "SCP1", "EthanolConcentration": "Ethanol"}
TASKS = (
    preset_task("SelfRegulationSCP1", 896, 6, 2, 12.0),
    preset_task("EthanolConcentration", 1751, 3, 4, 15.0),
    preset_task("EigenWorms", 17984, 6, 5, 33.0),
)


@dataclasses.dataclass(frozen=True)
class Suite:
    """What one run measures: the solver grid (`T`, `D`, `batch`), the training
    tasks (`tasks`, `train_batch`) and the guards' defaults."""

    T: tuple[int, ...]
    D: tuple[int, ...]
    batch: int
    tasks: tuple[Task, ...]
    train_batch: int
    key: tuple[int, int]  # (T, D) at which the targets are read
    round_s: float  # the aimed duration of one round of training steps
    repeats: int  # timed rounds per configuration
    budget_s: float  # the whole run
    config_budget_s: float  # one (T, D) point of the solver grid


FULL = Suite(
    T=(4096, 16384, 65536, 262144),
    D=(64, 256),
    batch=16,
    tasks=TASKS,
    train_batch=4,
    key=(65536, 64),
    round_s=1.0,
    repeats=5,
    budget_s=420.0,
    config_budget_s=60.0,
)
SMOKE = Suite(
    T=(64, 256),
    D=(8,),
    batch=2,
    # one task: the three run the same code (the full suite's grid is checked
    # against the paper's table by tests/test_gpu_suite.py)
    tasks=(
        dataclasses.replace(
            TASKS[0], hidden_size=8, state_size=4, num_blocks=1, length=32
        ),
    ),
    train_batch=2,
    key=(256, 8),
    round_s=0.02,
    repeats=3,
    # no time guard: the smoke run must measure everything even on a loaded CPU
    budget_s=3600.0,
    config_budget_s=3600.0,
)
# The targets at (T, D) = suite.key: forward and forward + gradient speed-up
# over lax.scan, Newton iterations, float32 error against lax.scan.
TARGETS = dict(forward=100.0, gradient=30.0, iterations=3, error=1e-5)
# The contenders: solver modules for `lt.solve` and `LrcSSM(solver=...)`. The first
# of each mode is the reference ("lax.scan"): a plain scan, without the per-step
# stability check that `Sequential()` makes by default (so the ratios are not
# flattered by a slower baseline), its gradient at the fixed point; the gradient is
# also timed by autodiff through the scan, the baseline of the CPU table.
SOLVERS = {
    "sequential": lt.Sequential(check_stability=False),
    "sequential_autodiff": lt.Sequential(autodiff=True, check_stability=False),
    "parallel": lt.ParallelNewton(),
}
CONTENDERS = {
    "forward": ("sequential", "parallel"),
    "gradient": ("sequential", "sequential_autodiff", "parallel"),
    "training": ("sequential", "parallel"),
}


def solve(name: str, neuron, x0, inputs) -> lt.Solution:
    """One sequence by the named contender."""
    return lt.solve(neuron, x0, inputs, solver=SOLVERS[name])


# ----------------------------------------------------------------------------------
# Time and memory guards


class Clock:
    """Seconds left until a deadline."""

    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def predict_seconds(prev: dict | None, size: float, calls: int = 2) -> float:
    """The least time a configuration takes (compile, then `calls` calls of each
    contender: the warm-up and one timed round), predicted from `prev`, the cost
    record of a smaller one of the same kind: `size`, `compile_s` (taken as is)
    and `call_s` (one call of every contender, scaled linearly in `size`). 0
    without a previous record."""
    if prev is None:
        return 0.0
    return prev["compile_s"] + calls * prev["call_s"] * size / prev["size"]


def skip_reason(
    predicted_s: float, left_s: float, need_bytes: float = 0.0, limit_bytes=None
) -> str | None:
    """Why a configuration is not run (the CSV `status`), or `None` to run it."""
    if limit_bytes is not None and need_bytes > limit_bytes:
        return (
            f"skipped: OOM (needs {need_bytes / 2**30:.1f} GiB of "
            f"{limit_bytes / 2**30:.1f} GiB)"
        )
    if predicted_s > left_s:
        need = f"needs ~{predicted_s:.0f} s, " if predicted_s > 0 else ""
        return f"skipped: time ({need}{max(left_s, 0):.0f} s left)"
    return None


def is_oom(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


class SkipConfig(Exception):
    """A configuration that does not fit; its message is the CSV `status`."""


def device_memory() -> tuple[float, float | None]:
    """The device's peak memory in use by this process so far (MiB, NaN where
    `memory_stats` is unavailable, e.g. on a CPU) and its limit in bytes."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return (float("nan") if peak is None else peak / 2**20), stats.get("bytes_limit")


def device_slug() -> str:
    kind = jax.devices()[0].device_kind
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or "device"


# ----------------------------------------------------------------------------------
# Solver grid


def forward_fns(names) -> dict[str, Callable]:
    """Jitted `(neuron, x0, inputs) -> (states, iterations)` over a batch."""

    def one(name):
        def f(neuron, x0, inputs):
            sol = solve(name, neuron, x0, inputs)
            return sol.states, jnp.asarray(sol.iterations, jnp.int32)

        return batched(f)

    return {name: one(name) for name in names}


def gradient_fns(names) -> dict[str, Callable]:
    """Jitted `((neuron, inputs), x0, w) -> (loss, gradients)` over a batch."""

    def one(name):
        def loss(diff, x0, w):
            neuron, inputs = diff
            states = jax.vmap(lambda x, u: solve(name, neuron, x, u).states)(x0, inputs)
            return jnp.mean(jnp.sum(w * states, axis=(1, 2)))

        value_and_grad = eqx.filter_value_and_grad(loss)
        # a plain function: `jax.jit(...).lower` hashes what it wraps
        return jax.jit(lambda diff, x0, w: value_and_grad(diff, x0, w))

    return {name: one(name) for name in names}


def rel_err(a, b) -> float:
    """The largest over leaves of max |a - b| / max |b|."""
    pairs = zip(
        jax.tree.leaves(eqx.filter(a, eqx.is_inexact_array)),
        jax.tree.leaves(eqx.filter(b, eqx.is_inexact_array)),
    )
    return max(
        float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-30)) for x, y in pairs
    )


def measure(fns, args, error, count, repeats, budget_s, limit) -> dict:
    """Compile every contender once and check its memory against `limit` (bytes
    or `None`; a contender that does not fit is left out with its reason in
    `skipped`, unless it is the first, the reference), time the others interleaved
    (rounds within `budget_s`), and record on every call the error
    `error(out, reference_out)` against the reference's first output and, with
    `count`, the largest `count(out)` (Newton iterations)."""
    t0 = time.perf_counter()
    compiled, mem, skipped = {}, {}, {}
    for i, (name, f) in enumerate(fns.items()):
        compiled[name], mem[name] = compile_with_memory(f, *args)
        try:
            check_memory(mem[name], limit)
        except SkipConfig as e:
            if i == 0:
                raise
            del compiled[name]
            skipped[name] = str(e)
    compile_s = time.perf_counter() - t0
    ref, errs, its = {}, dict.fromkeys(compiled, 0.0), dict.fromkeys(compiled, 0)

    def check(name, out):
        ref.setdefault("out", out)
        errs[name] = max(errs[name], error(out, ref["out"]))
        if count is not None:
            its[name] = max(its[name], count(out))

    calls = {name: lambda c=c: c(*args) for name, c in compiled.items()}
    times = time_interleaved(calls, check, repeats, budget_s - compile_s)
    return dict(
        times=times, errs=errs, its=its, mem=mem, compile_s=compile_s, skipped=skipped
    )


def check_memory(mem: dict, limit) -> None:
    """Raise `SkipConfig` if a compiled program needs more than `limit` bytes."""
    reason = skip_reason(0.0, 1.0, mem["peak_mib"] * 2**20, limit)
    if reason:
        raise SkipConfig(reason)


def forward_error(out, ref) -> float:
    return max_diff(out[0], ref[0])


def gradient_error(out, ref) -> float:
    return rel_err(out[1], ref[1])


def newton_iterations(out) -> int:
    return int(jnp.max(out[1]))


MODES = ("forward", "gradient")
PHASES = {  # the programs, their error against the reference, its column, a count
    "forward": (forward_fns, forward_error, "max_abs_err", newton_iterations),
    "gradient": (gradient_fns, gradient_error, "grad_rel_err", None),
}


def phase(mode, args, repeats, budget_s, limit) -> tuple[list[dict], dict]:
    """The rows of one mode at one (T, D) point and its cost record."""
    fns, error, column, count = PHASES[mode]
    res = measure(fns(CONTENDERS[mode]), args, error, count, repeats, budget_s, limit)
    med = {name: statistics.median(ts) for name, ts in res["times"].items()}
    base, autodiff = med[CONTENDERS[mode][0]], med.get("sequential_autodiff")
    rows = [
        {
            "mode": mode,
            "contender": name,
            "status": "ok",
            "median_ms": 1e3 * med[name],
            "min_ms": 1e3 * min(ts),
            "rounds": len(ts),
            "ratio_to_scan": med[name] / base,
            "speedup_vs_scan": base / med[name],
            "speedup_vs_autodiff": autodiff / med[name] if autodiff else "",
            "iterations": res["its"][name] if count and name == "parallel" else "",
            column: res["errs"][name],
            "peak_mib": res["mem"][name]["peak_mib"],
            "compile_s": res["compile_s"],
        }
        for name, ts in res["times"].items()
    ]
    rows += [
        {"mode": mode, "contender": name, "status": reason, **res["mem"][name]}
        for name, reason in res["skipped"].items()
    ]
    return rows, dict(compile_s=res["compile_s"], call_s=sum(med.values()))


def solver_point(T, D, batch, repeats, budget_s, prev, oom) -> list[dict]:
    """The rows of one (T, D) point, forward then gradient, each behind the guard:
    skipped if its predicted time (from the cost record `prev[(D, mode)]`, or the
    last one of that mode `prev[mode]`, both updated here) exceeds what is left of
    `budget_s`, or if it ran out of memory at a smaller T (`oom`, updated here);
    its timing rounds get an equal share of what is left."""
    start = time.perf_counter()

    @functools.cache
    def args():  # made only if a mode runs: skipping costs no memory
        neuron, x0, inputs = problem(T, D, batch)
        w = jr.normal(jr.key(1), inputs.shape, jnp.float32)
        return dict(forward=(neuron, x0, inputs), gradient=((neuron, inputs), x0, w))

    size, rows = batch * T * D * D, []
    for i, mode in enumerate(MODES):
        left = budget_s - (time.perf_counter() - start)
        last = prev.get((D, mode), prev.get(mode))  # else the last of another D
        reason = skip_reason(predict_seconds(last, size), left)
        if (D, mode) in oom:
            reason = "skipped: OOM (at a smaller T)"
        if reason is None:
            try:
                share = left / (len(MODES) - i)
                limit = device_memory()[1]
                new, cost = phase(mode, args()[mode], repeats, share, limit)
                prev[(D, mode)] = prev[mode] = dict(cost, size=size)
            except SkipConfig as e:
                reason = str(e)
            except Exception as e:
                reason = failure(e)
        if reason is not None:
            new = [dict(mode=mode, contender="all", status=reason)]
            if "OOM" in reason:
                oom.add((D, mode))
        rows += new
    return rows


def solver_grid(suite: Suite, repeats: int, clock: Clock, config_budget, on_rows):
    """Every (T, D) point from the smallest to the largest, each within
    `config_budget` seconds and what is left on `clock`."""
    points = sorted(itertools.product(suite.T, suite.D), key=lambda p: p[0] * p[1])
    prev, oom, rows = {}, set(), []
    for T, D in points:
        budget = min(config_budget, clock.left())
        new = solver_point(T, D, suite.batch, repeats, budget, prev, oom)
        head = dict(device=jax.devices()[0].device_kind, T=T, D=D, batch=suite.batch)
        new = [dict(head, **r, device_peak_mib=device_memory()[0]) for r in new]
        rows += new
        print(fmt(new, SOLVER_COLUMNS), flush=True)
        on_rows(rows)
    return rows


SOLVER_COLUMNS = ["T", "D", "mode", "contender", "median_ms", "speedup_vs_scan"]
SOLVER_COLUMNS += ["speedup_vs_autodiff", "iterations", "max_abs_err", "grad_rel_err"]
SOLVER_COLUMNS += ["peak_mib", "status"]


def failure(error: BaseException) -> str:
    """The CSV `status` of a configuration that raised."""
    if is_oom(error):
        return "skipped: OOM (at run time)"
    traceback.print_exc()
    return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"


# ----------------------------------------------------------------------------------
# Training step


def train_step(static, optimiser) -> Callable:
    """Jitted `(params, opt_state, x, y) -> (params, opt_state, loss)`: one step of
    mean cross-entropy, its gradient and the optimiser's update."""

    def step(params, opt_state, x, y):
        def loss_fn(params):
            logits = jax.vmap(eqx.combine(params, static))(x)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        # optax mixes Python scalars and int32 counters: standard promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimiser.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    return jax.jit(step)


def compiled_step(task: Task, name: str, optimiser, x, y, limit):
    """The named contender's compiled training step on `task` (parameters from a
    fixed key, so the same for every contender), its initial `[params, opt_state]`
    and XLA's memory analysis."""
    model = LrcSSM(
        task.channels,
        task.classes,
        hidden_size=task.hidden_size,
        state_size=task.state_size,
        num_blocks=task.num_blocks,
        solver=SOLVERS[name],
        dtype=jnp.float32,
        key=jr.key(3),
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)
    run, mem = compile_with_memory(
        train_step(static, optimiser), params, opt_state, x, y
    )
    check_memory(mem, limit)
    return run, [params, opt_state], mem


def task_config(task: Task, batch, repeats, round_s, budget_s, limit):
    """The rows of one training task and its cost record: every contender compiled
    and stepped once, then rounds of `k` steps (about `round_s` seconds)
    interleaved, within `budget_s`."""
    start = time.perf_counter()
    kx, ky = jr.split(jr.key(2))
    x = jr.normal(kx, (batch, task.length, task.channels), jnp.float32)
    y = jr.randint(ky, (batch,), 0, task.classes, jnp.int32)
    optimiser = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adam(task.learning_rate)
    )
    runs, states, mem, first, step_s = {}, {}, {}, {}, {}
    for name in CONTENDERS["training"]:
        runs[name], states[name], mem[name] = compiled_step(
            task, name, optimiser, x, y, limit
        )
        t0 = time.perf_counter()
        *states[name], loss = jax.block_until_ready(runs[name](*states[name], x, y))
        step_s[name], first[name] = time.perf_counter() - t0, float(loss)
    compile_s = time.perf_counter() - start - sum(step_s.values())
    k = max(1, min(20, round(round_s / max(step_s.values()))))
    contenders = CONTENDERS["training"]
    finite = dict.fromkeys(contenders, True)

    def steps(name):
        def run():
            for _ in range(k):
                *states[name], loss = runs[name](*states[name], x, y)
            return loss

        return run

    def check(name, loss):
        finite[name] &= bool(jnp.isfinite(loss))

    left = budget_s - (time.perf_counter() - start)
    times = time_interleaved({n: steps(n) for n in contenders}, check, repeats, left)
    rows = [
        dict(
            contender=name,
            status="ok" if finite[name] else "failed: non-finite loss",
            s_per_1000_steps=1e3 * statistics.median(ts) / k,
            steps_per_round=k,
            rounds=len(ts),
            first_loss=first[name],
            first_loss_diff=abs(first[name] - first[contenders[0]]),
            peak_mib=mem[name]["peak_mib"],
            compile_s=compile_s,
        )
        for name, ts in times.items()
    ]
    cost = dict(compile_s=compile_s, call_s=sum(step_s.values()))
    return rows, dict(cost, size=task_size(task), blocks=task.num_blocks)


def task_size(task: Task) -> float:
    return task.length * task.num_blocks * task.hidden_size * task.state_size


def task_prediction(prev: dict | None, task: Task) -> float:
    """`predict_seconds` for a training task (the first step counts as a call;
    compile time scales with the number of blocks)."""
    if prev is None:
        return 0.0
    compile_s = prev["compile_s"] * task.num_blocks / prev["blocks"]
    return predict_seconds(dict(prev, compile_s=compile_s), task_size(task), 3)


def training(suite: Suite, repeats: int, clock: Clock, on_rows):
    """Every training task in turn, each with an equal share of the time left."""
    prev, rows = None, []
    for i, task in enumerate(suite.tasks):
        head = dict(
            device=jax.devices()[0].device_kind,
            task=task.name,
            H=task.hidden_size,
            D=task.state_size,
            blocks=task.num_blocks,
            T=task.length,
            batch=suite.train_batch,
        )
        budget = clock.left() / (len(suite.tasks) - i)
        reason = skip_reason(task_prediction(prev, task), clock.left())
        new = []
        if reason is None:
            try:
                new, prev = task_config(
                    task,
                    suite.train_batch,
                    repeats,
                    suite.round_s,
                    budget,
                    device_memory()[1],
                )
            except SkipConfig as e:
                reason = str(e)
            except Exception as e:
                reason = failure(e)
        if reason is not None:
            new = [dict(contender="all", status=reason)]
        new = [dict(head, **r, paper_a100_s_per_1000=task.paper_a100) for r in new]
        rows += new
        print(fmt(new, TRAINING_COLUMNS), flush=True)
        on_rows(rows)
    return rows


TRAINING_COLUMNS = ["task", "H", "D", "blocks", "T", "contender", "s_per_1000_steps"]
TRAINING_COLUMNS += ["paper_a100_s_per_1000", "first_loss_diff", "status"]


# ----------------------------------------------------------------------------------
# Summary and figure


def find(rows, **where) -> dict | None:
    for r in rows:
        if all(r.get(k) == v for k, v in where.items()):
            return r
    return None


def verdict(row, column, bound, at_least) -> str:
    """`value: met` / `value: NOT met`, or why it was not measured."""
    if row is None or row.get("status") != "ok" or row.get(column) in (None, ""):
        status = "not in the grid" if row is None else row["status"]
        return f"not measured ({status})"
    value = float(row[column])
    met = value >= bound if at_least else value <= bound
    return f"{value:.3g}: {'met' if met else 'NOT met'}"


def summary(solver_rows, training_rows, suite: Suite) -> str:
    T, D = suite.key
    fwd, grad = (
        find(solver_rows, T=T, D=D, mode=mode, contender="parallel")
        or find(solver_rows, T=T, D=D, mode=mode)
        for mode in MODES
    )
    lines = [
        f"# GPU suite on {machine()}",
        "",
        f"Targets of issue 12 at T = {T}, D = {D}, batch {suite.batch}, float32:",
        "",
        f"- forward >= {TARGETS['forward']:g}x lax.scan: "
        + verdict(fwd, "speedup_vs_scan", TARGETS["forward"], True),
        f"- forward + gradient >= {TARGETS['gradient']:g}x lax.scan (Sequential(), "
        "its gradient at the fixed point): "
        + verdict(grad, "speedup_vs_scan", TARGETS["gradient"], True),
        f"- forward + gradient >= {TARGETS['gradient']:g}x autodiff through lax.scan: "
        + verdict(grad, "speedup_vs_autodiff", TARGETS["gradient"], True),
        f"- <= {TARGETS['iterations']} Newton iterations: "
        + verdict(fwd, "iterations", TARGETS["iterations"], False),
        f"- error vs lax.scan <= {TARGETS['error']:g}: "
        + verdict(fwd, "max_abs_err", TARGETS["error"], False),
    ]
    par = {
        mode: [
            r
            for r in solver_rows
            if (r["mode"], r["contender"], r["status"]) == (mode, "parallel", "ok")
        ]
        for mode in MODES
    }
    if par["forward"] and par["gradient"]:
        lines += [
            "",
            f"Over all measured configurations: at most "
            f"{max(r['iterations'] for r in par['forward'])} Newton iterations, "
            f"forward error <= {max(r['max_abs_err'] for r in par['forward']):.2g}, "
            "gradient relative error <= "
            f"{max(r['grad_rel_err'] for r in par['gradient']):.2g}.",
        ]
    lines += ["", "Solver grid:", "", fmt(solver_rows, SOLVER_COLUMNS)]
    lines += ["", "Training step, seconds per 1000 steps (paper: A100):", ""]
    lines += [fmt(training_rows, TRAINING_COLUMNS)]
    return "\n".join(lines)


def plot_times(ax, ok: list[dict], mode: str) -> None:
    for name, D in sorted({(r["contender"], r["D"]) for r in ok}):
        pts = sorted(
            (r["T"], r["median_ms"])
            for r in ok
            if (r["mode"], r["contender"], r["D"]) == (mode, name, D)
        )
        if pts:
            ax.loglog(*zip(*pts), "o-", label=f"{name}, D={D}")
    ax.set_title(f"{mode} (batch {ok[0]['batch'] if ok else '?'})")
    ax.set_xlabel("T")
    ax.set_ylabel("time (ms, median)")


def plot_speedups(ax, ok: list[dict]) -> None:
    curves = [
        ("forward", "speedup_vs_scan", "o-"),
        ("gradient", "speedup_vs_scan", "o-"),
    ]
    curves += [("gradient", "speedup_vs_autodiff", "s--")]
    for (mode, column, style), D in itertools.product(
        curves, sorted({r["D"] for r in ok})
    ):
        pts = sorted(
            (r["T"], r[column])
            for r in ok
            if (r["mode"], r["contender"], r["D"]) == (mode, "parallel", D)
            and r[column] != ""
        )
        label = f"{mode}, D={D}" + (" (vs autodiff)" if "autodiff" in column else "")
        if pts:
            ax.loglog(*zip(*pts), style, label=label)
    for mode in MODES:
        ax.axhline(TARGETS[mode], ls=":", c="gray")
    ax.set_title("parallel speed-up over lax.scan (dotted: targets)")
    ax.set_xlabel("T")


def plot_training(ax, rows: list[dict]) -> None:
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    bars = {
        name: [
            (find(rows, task=t, contender=name) or {}).get("s_per_1000_steps")
            for t in tasks
        ]
        for name in CONTENDERS["training"]
    }
    bars["paper (A100)"] = [find(rows, task=t)["paper_a100_s_per_1000"] for t in tasks]
    width = 0.8 / len(bars)
    for j, (name, values) in enumerate(bars.items()):
        x = [i + width * (j - (len(bars) - 1) / 2) for i in range(len(tasks))]
        ax.bar(x, [float("nan") if v is None else v for v in values], width, label=name)
    ax.set_xticks(range(len(tasks)), [SHORT.get(t, t) for t in tasks], fontsize=8)
    ax.set_yscale("log")
    ax.set_title("training step (s / 1000 steps)")


def plot(solver_rows, training_rows, path: Path) -> None:
    """Times against T (forward, gradient), speed-ups with the targets, and the
    training step against the paper's A100 figures, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in solver_rows if r["status"] == "ok"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    plot_times(axes[0][0], ok, "forward")
    plot_times(axes[0][1], ok, "gradient")
    plot_speedups(axes[1][0], ok)
    plot_training(axes[1][1], training_rows)
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"LRC float32 — {machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


# ----------------------------------------------------------------------------------


# Block Newton's grid on a device: the T, dense DEER skipped where one call
# is predicted to exceed 30 s; 60 s in all, on top of `--budget`.
BLOCK_GRID = ["--T", "4096", "16384", "65536", "--budget", "60", "--dense-limit", "30"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CPU, < 1 min)")
    p.add_argument("--out", type=Path, required=True, help="results folder")
    p.add_argument("--repeats", type=positive, help="timed rounds (default 5)")
    p.add_argument("--budget", type=float, help="seconds for the run (default 420)")
    p.add_argument(
        "--config-budget", type=float, help="seconds per grid point (default 60)"
    )
    args = p.parse_args(argv)
    suite = SMOKE if args.smoke else FULL
    repeats = args.repeats or suite.repeats
    budget = args.budget or suite.budget_s
    config_budget = args.config_budget or suite.config_budget_s
    print(machine(), flush=True)
    if jax.default_backend() == "cpu" and not args.smoke:
        print("warning: no accelerator; the time guard will skip most of the grid")
    total = Clock(budget)
    slug = device_slug()
    out = args.out
    solver_csv = out / f"solver_{slug}.csv"
    training_csv = out / f"training_{slug}.csv"
    solver_rows = solver_grid(
        suite,
        repeats,
        Clock(0.6 * budget),
        config_budget,
        lambda rows: write_csv(solver_csv, rows),
    )
    training_rows = training(
        suite,
        repeats,
        total,  # with what the solver grid left
        lambda rows: write_csv(training_csv, rows),
    )
    # Block Newton on FitzHugh-Nagumo (issue 20): block against dense DEER,
    # quasi-DEER and the scan, in its own CSV, 60 s more (BLOCK_GRID).
    import block_newton

    block_newton.main(
        ["--out", str(out), "--repeats", "1" if args.smoke else "2"]
        + (["--T", "64", "--budget", "60"] if args.smoke else BLOCK_GRID),
        csv_name=f"block_newton_{slug}.csv",
    )
    plot(solver_rows, training_rows, out / f"gpu_{slug}.png")
    text = summary(solver_rows, training_rows, suite)
    (out / f"summary_{slug}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
