"""Sequence-parallel solves and data-parallel training on several (CPU) devices.

JAX fixes its device count when it starts, so the multi-device checks run in
subprocesses (`_sharding_worker.py`) with
`XLA_FLAGS=--xla_force_host_platform_device_count=N`: 4 devices for the sequence-
and data-parallel checks, and two processes of 2 devices joined by
`jax.distributed.initialize` for the multi-host recipe. The subprocesses start
together when the first test needs them. Argument errors are checked here.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

import lrc_toolkit as lt
import lrc_toolkit.distributed as dist

from .helpers import python_loop, python_recurrence, slow_after_first


WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sharding_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workers():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["JAX_PLATFORMS"] = "cpu"
    multihost = dict(
        env, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}", JAX_NUM_PROCESSES="2"
    )
    launch = {
        "solve": ("solve", env),
        "train": ("train", env),
        "multihost 0": ("multihost", dict(multihost, JAX_PROCESS_ID="0")),
        "multihost 1": ("multihost", dict(multihost, JAX_PROCESS_ID="1")),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, WORKER, mode],
            env=penv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (mode, penv) in launch.items()
    }
    outputs = {}

    def result(name):
        if name not in outputs:
            try:
                out, err = procs[name].communicate(timeout=900)
            except subprocess.TimeoutExpired:
                procs[name].kill()
                out, err = procs[name].communicate()
            lines = [l for l in out.splitlines() if l.startswith("RESULTS ")]
            if procs[name].returncode != 0 or not lines:
                tail = "\n".join(
                    l for l in err.splitlines() if "spmd_partitioner" not in l
                )[-4000:]
                pytest.fail(f"worker {name!r} failed:\n{tail}")
            outputs[name] = json.loads(lines[-1][len("RESULTS ") :])
        return outputs[name]

    yield result
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


def _check(diffs, tolerances):
    assert diffs, "the worker reported no checks"
    for name, value in diffs.items():
        tol = next(t for key, t in tolerances if key in name)
        assert value <= tol, f"{name}: {value:.3g} > {tol:.1g}"


@pytest.mark.slow
def test_sharded_solve_matches_single_device(workers):
    res = workers("solve")
    diffs = res["diffs"]
    # Forward (float32 and float64) and gradient (float64; parameters, x0, inputs)
    # of the diagonal LRC, the dense-Jacobian DenseLRC and the 2 x 2-block
    # FitzHughNagumo, T a multiple of 4 or not; against the single-device solve and
    # independent references.
    expected = {
        f"{n} {d} {what}"
        for n in ("LRC", "DenseLRC")
        for d in ("float64", "float32")
        for what in ("forward vs python loop",)
    }
    assert expected <= set(diffs)
    assert {
        "LRC float32 forward vs solve_parallel",
        "LRC float64 forward vs solve_parallel",
        "LRC float64 grad vs solve_parallel",
        "DenseLRC float32 forward vs solve_parallel",
        "LRC float64 grad vs lax.scan autodiff",
        "DenseLRC float64 grad vs lax.scan autodiff",
        "FitzHughNagumo float64 forward vs python loop",
        "FitzHughNagumo float64 grad vs lax.scan autodiff",
        "recurrence block associative reverse",
        "recurrence block sequential forward",
    } <= set(diffs)
    _check(
        diffs,
        [
            ("recurrence", 1e-12),
            ("float64 forward vs solve_parallel", 1e-12),
            ("float64 grad vs solve_parallel", 1e-12),
            ("float64", 1e-10),  # vs independent references
            ("float32 forward vs solve_parallel", 1e-6),
            ("float32", 1e-5),
            ("vmap", 1e-12),
        ],
    )
    assert sum("recurrence" in k for k in diffs) == 12
    # T = 12 on 4 devices: each holds 3 steps.
    assert res["info"]["recurrence T=12 devices"] == 4
    assert res["info"]["recurrence T=12 shard shape"] == [3, 4]


@pytest.mark.slow
def test_data_parallel_step_matches_single_device(workers):
    res = workers("train")
    assert res["info"]["devices holding the batch"] == 4
    assert res["info"]["global batch shape"] == [8, 1]
    # `training.fit(mesh=...)` on 4 devices vs `fit()` on one: parameters after an
    # epoch, training and validation losses, accuracy.
    _check(res["diffs"], [("params", 1e-6), ("loss", 1e-6), ("accuracy", 0.0)])
    assert len(res["diffs"]) == 4


@pytest.mark.slow
@pytest.mark.parametrize("process", [0, 1])
def test_multi_process_data_parallel(workers, process):
    # Two processes of two devices each, joined through `dist.initialize()` from
    # the JAX_* environment variables, train like one device.
    res = workers(f"multihost {process}")
    assert res["info"]["processes"] == 2
    assert res["info"]["devices"] == 4
    assert res["info"]["devices holding the batch"] == 4
    assert res["info"]["global batch shape"] == [8, 1]
    _check(res["diffs"], [("params", 1e-12), ("losses", 1e-12)])


# ----------------------------------------------------------------------------------
# Argument errors (one device, in process)


def _mesh(name="time", axis_type=AxisType.Auto):
    return Mesh(np.array(jax.devices()[:1]), (name,), axis_types=(axis_type,))


def _sharded(mesh):
    return lt.ParallelNewton(recurrence=lt.ShardedScan(mesh))


def test_solve_errors(getkey):
    neuron = lt.LRC(3, 2, key=getkey())
    x0, inputs = jnp.zeros(3), jnp.zeros((5, 2))
    # (the annotation check of the test suite fires before the function's own)
    with pytest.raises(TypeError, match="mesh"):
        lt.ShardedScan("cpu")
    with pytest.raises(ValueError, match="is not an axis of the mesh"):
        lt.ShardedScan(_mesh("data"))
    with pytest.raises(ValueError, match="is not an axis of the mesh"):
        lt.ShardedScan(_mesh(), axis_name="data")
    with pytest.raises(ValueError, match="input_size=2"):
        lt.solve(neuron, x0, inputs[:, :1], solver=_sharded(_mesh()))
    explicit = _mesh(axis_type=AxisType.Explicit)
    committed = jax.device_put(inputs, NamedSharding(explicit, P()))
    with pytest.raises(ValueError, match="`Explicit` axes"):
        lt.solve(neuron, x0, committed, solver=_sharded(explicit))
    # On one device the sharded recurrence is the plain solve.
    inputs = jax.random.normal(getkey(), (5, 2))
    sol = lt.solve(neuron, x0, inputs, solver=_sharded(_mesh()))
    np.testing.assert_allclose(
        sol.states, python_loop(neuron, x0, inputs), rtol=1e-9, atol=1e-12
    )


def test_recurrence_errors():
    # Under the suite's annotation checks these surface as TypeErrors naming the
    # parameter; without them, as the function's own ValueErrors.
    a, b = jnp.zeros((4, 3)), jnp.zeros((4, 3))
    with pytest.raises((TypeError, ValueError), match="scan"):
        lt.sharded_linear_recurrence(a, b, mesh=_mesh(), scan="parallel")
    with pytest.raises((TypeError, ValueError), match="`a`|'a'"):
        lt.sharded_linear_recurrence(a[:3], b, mesh=_mesh())
    with pytest.raises(ValueError, match="is not an axis of the mesh"):
        lt.sharded_linear_recurrence(a, b, mesh=_mesh("data"))


def test_distributed_single_process(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    assert dist.initialize() is False  # nothing configured: single process
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match="needs all three"):
        dist.initialize()
    with pytest.raises(ValueError, match="must be in"):
        dist.initialize("127.0.0.1:1", 2, 2)

    mesh = dist.data_mesh()
    assert mesh.axis_names == ("data",) and mesh.size == jax.device_count()
    assert dist.process_batch_slice(6, mesh) == slice(0, 6)
    x = np.arange(12.0).reshape(6, 2)
    batch = dist.shard_batch({"x": x, "n": 3}, mesh)
    assert batch["n"] == 3
    assert batch["x"].sharding == NamedSharding(mesh, P("data"))
    np.testing.assert_array_equal(np.asarray(batch["x"]), x)
    model = dist.replicate({"w": jnp.ones(3), "name": "m"}, mesh)
    assert model["w"].sharding == NamedSharding(mesh, P())
    assert model["name"] == "m"
    with pytest.raises(ValueError, match="leading batch axis"):
        dist.shard_batch(np.zeros(()), mesh)
    with pytest.raises(ValueError, match="is not an axis of the mesh"):
        dist.shard_batch(x, mesh, axis_name="time")
    with pytest.raises(ValueError, match="`devices` is empty"):
        dist.data_mesh([])


@pytest.mark.parametrize(
    "scan, reverse",
    slow_after_first(
        [("associative", True), ("sequential", False), ("associative", False)],
        unpack=True,
    ),
)
def test_sharded_block_recurrence_on_one_device(scan, reverse, getkey):
    # Blocks of k x k through the sharded recurrence's own code paths (fold and
    # associative chunks, both directions) on a one-device mesh, against a Python
    # loop; the four-device run is in the worker.
    T, N, k = 9, 3, 2
    a = jr.uniform(getkey(), (T, N, k, k), jnp.float64, -0.6, 0.6)
    b = jr.normal(getkey(), (T, N * k), jnp.float64)
    got = lt.sharded_linear_recurrence(a, b, mesh=_mesh(), scan=scan, reverse=reverse)
    want = python_recurrence(a, b, reverse)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
