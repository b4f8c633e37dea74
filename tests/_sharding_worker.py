"""Multi-device checks run in a subprocess by `test_sharding.py`.

`XLA_FLAGS=--xla_force_host_platform_device_count=N` must be set before JAX starts,
so these checks cannot run in the pytest process. Each mode prints one line
`RESULTS {"diffs": {check: max abs difference}, "info": {...}}` that the test
compares with tolerances.

    python tests/_sharding_worker.py solve        # 4 devices, sequence parallel
    python tests/_sharding_worker.py train        # 4 devices, data parallel
    python tests/_sharding_worker.py multihost    # 2 devices, one of 2 processes
"""

import json
import os
import sys


MODE = sys.argv[1]
DEVICES = 2 if MODE == "multihost" else 4
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_force_host_platform_device_count={DEVICES}"
)

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402


jax.config.update("jax_enable_x64", True)
if MODE == "solve":  # (optax's Adam mixes int32 step counts with floats)
    jax.config.update("jax_numpy_dtype_promotion", "strict")

import lrc_toolkit.distributed as dist  # noqa: E402


if MODE == "multihost":
    # From JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, before
    # anything else touches the devices.
    assert dist.initialize()

import lrc_toolkit as lt  # noqa: E402


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import max_abs_diff, python_loop, python_recurrence  # noqa: E402


results = {}  # check name -> max abs difference
info = {}


def diff(name, x, y):
    results[name] = max_abs_diff(x, y)


def scaled_diff(name, x, y):
    """Largest difference relative to the largest entry (for gradients)."""
    scale = max(max_abs_diff(y, jax.tree.map(jnp.zeros_like, y)), 1e-30)
    results[name] = max_abs_diff(x, y) / scale


# ----------------------------------------------------------------------------------
# Sequence parallelism


def value_and_grad(solve):
    """One compiled function: the states and the gradient of a weighted sum of them
    w.r.t. the neuron's parameters, x0 and the inputs."""

    @eqx.filter_jit
    def run(neuron, x0, inputs, w, dt=1.0):
        def loss(args):
            states = solve(*args, dt).states
            return jnp.sum(w * states), states

        (_, states), grads = eqx.filter_value_and_grad(loss, has_aux=True)(
            (neuron, x0, inputs)
        )
        return states, grads

    return run


def check_solve():
    assert jax.device_count() == 4
    mesh = jax.make_mesh((4,), ("time",), axis_types=(jax.sharding.AxisType.Auto,))

    # The sharded recurrence alone: both algorithms, both directions, diagonal,
    # dense and 2 x 2 blocks, T = 13 (not a multiple of 4). One compilation for all.
    T, D = 13, 4
    transitions = {
        "diag": jr.uniform(jr.key(0), (T, D), jnp.float64, -0.9, 0.9),
        "dense": jr.uniform(jr.key(1), (T, D, D), jnp.float64, -0.3, 0.3),
        "block": jr.uniform(jr.key(9), (T, D // 2, 2, 2), jnp.float64, -0.5, 0.5),
    }
    b = jr.normal(jr.key(2), (T, D), jnp.float64)
    variants = [
        (kind, scan, reverse)
        for kind in transitions
        for scan in ("associative", "sequential")
        for reverse in (False, True)
    ]

    @jax.jit
    def all_recurrences(transitions, b):
        return [
            lt.sharded_linear_recurrence(
                transitions[kind], b, mesh=mesh, reverse=reverse, scan=scan
            )
            for kind, scan, reverse in variants
        ]

    outs = all_recurrences(transitions, b)
    for (kind, scan, reverse), out in zip(variants, outs):
        a = transitions[kind]
        name = f"recurrence {kind} {scan} {'reverse' if reverse else 'forward'}"
        diff(name, out, python_recurrence(a, b, reverse))

    # A chunk's states live on its device.
    x = jax.jit(lambda a, b: lt.sharded_linear_recurrence(a, b, mesh=mesh))(
        transitions["diag"][:12], b[:12]
    )
    info["recurrence T=12 devices"] = len(x.sharding.device_set)
    info["recurrence T=12 shard shape"] = list(x.addressable_shards[0].data.shape)

    sharded_newton = lt.ParallelNewton(recurrence=lt.ShardedScan(mesh))
    single = value_and_grad(
        lambda n, x0, u, dt: lt.solve(n, x0, u, dt=dt, solver=lt.ParallelNewton())
    )
    sharded = value_and_grad(
        lambda n, x0, u, dt: lt.solve(n, x0, u, dt=dt, solver=sharded_newton)
    )
    # Reverse-mode autodiff through lax.scan: the independent gradient reference.
    sequential = value_and_grad(
        lambda n, x0, u, dt: lt.solve(
            n, x0, u, dt=dt, solver=lt.Sequential(autodiff=True)
        )
    )
    # T = 37 and 21 are not multiples of 4 (the solve pads them).
    lrc = lambda k, dtype: lt.LRC(6, 3, dtype=dtype, key=k)
    dense_lrc = lambda k, dtype: lt.DenseLRC(4, 2, dtype=dtype, key=k)
    # blocks of 2 x 2 (the Newton step's block recurrence, sharded); dt = 0.1, where
    # its explicit step is stable
    fhn = lambda k, dtype: lt.FitzHughNagumo(6, 2, dtype=dtype, key=k)
    cases = [
        ("LRC", 37, lrc, jnp.float64, 1.0),
        ("LRC", 37, lrc, jnp.float32, 1.0),
        ("DenseLRC", 24, dense_lrc, jnp.float64, 1.0),
        ("DenseLRC", 21, dense_lrc, jnp.float32, 1.0),
        ("FitzHughNagumo", 22, fhn, jnp.float64, 0.1),
    ]
    leaves = lambda g: jax.tree.leaves(eqx.filter(g, eqx.is_array))
    for name, T, make, dtype, dt in cases:
        tag = f"{name} {jnp.dtype(dtype).name}"
        neuron = make(jr.key(3), dtype)
        P, D = neuron.input_size, neuron.state_size
        x0 = 0.1 * jr.normal(jr.key(4), (D,), dtype)
        inputs = jr.normal(jr.key(5), (T, P), dtype)
        w = jr.normal(jr.key(6), (T, D), dtype)
        # float64: forward and gradient; float32: the forward pass (its dtype and
        # accuracy), the sharded gradient's algebra being float64's.
        gradient = dtype == jnp.float64
        if gradient:
            states, grads = sharded(neuron, x0, inputs, w, dt)
            assert grads[1].shape == x0.shape and grads[2].shape == inputs.shape
        else:
            states = lt.solve(neuron, x0, inputs, dt=dt, solver=sharded_newton).states
        assert states.shape == (T, D) and states.dtype == dtype
        # Against the single-device solve (one compilation saved for dense float64,
        # which is checked against the independent references only) ...
        if not gradient:
            states_1 = lt.solve(
                neuron, x0, inputs, dt=dt, solver=lt.ParallelNewton()
            ).states
            diff(f"{tag} forward vs solve_parallel", states, states_1)
        elif name == "LRC":
            states_1, grads_1 = single(neuron, x0, inputs, w, dt)
            diff(f"{tag} forward vs solve_parallel", states, states_1)
            scaled_diff(f"{tag} grad vs solve_parallel", leaves(grads), leaves(grads_1))
        # ... and against independent references: a Python loop for the states,
        # autodiff through `lax.scan` for the gradients.
        loop = python_loop(neuron, x0, inputs, dt)
        diff(f"{tag} forward vs python loop", states, loop)
        if gradient:
            _, grads_seq = sequential(neuron, x0, inputs, w, dt)
            scaled_diff(
                f"{tag} grad vs lax.scan autodiff", leaves(grads), leaves(grads_seq)
            )

    # A batch of sequences with jax.vmap.
    neuron = lt.LRC(4, 2, key=jr.key(7))
    x0s = jnp.zeros((2, 4))
    us = jr.normal(jr.key(8), (2, 8, 2))
    solve = lambda n, x0, u: lt.solve(n, x0, u, solver=sharded_newton).states
    batched = eqx.filter_jit(jax.vmap(solve, in_axes=(None, 0, 0)))(neuron, x0s, us)
    reference = jnp.stack([python_loop(neuron, x, u) for x, u in zip(x0s, us)])
    diff("vmap batch forward vs python loop", batched, reference)


# ----------------------------------------------------------------------------------
# Data parallelism


class Model(eqx.Module):
    encoder: eqx.nn.Linear
    neuron: lt.LRC
    decoder: eqx.nn.Linear

    def __init__(self, dtype, key):
        k1, k2, k3 = jr.split(key, 3)
        self.encoder = eqx.nn.Linear(3, 4, dtype=dtype, key=k1)
        self.neuron = lt.LRC(6, 4, dtype=dtype, key=k2)
        self.decoder = eqx.nn.Linear(6, 2, dtype=dtype, key=k3)

    def __call__(self, u):
        x0 = jnp.zeros(self.neuron.state_size, u.dtype)
        inputs = jax.vmap(self.encoder)(u)
        states = lt.solve(self.neuron, x0, inputs, solver=lt.ParallelNewton()).states
        return self.decoder(jnp.mean(states, axis=0))


def make_step(optimiser):
    @eqx.filter_jit
    def step(model, opt_state, x, y):
        def loss_fn(model):
            return jnp.mean((jax.vmap(model)(x) - y) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimiser.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state, loss

    return step


def train_two_steps(dtype, mesh):
    """Two Adam steps on two batches of 8; data-parallel over `mesh` if given. Every
    process builds the same model and the same global batches (same seeds) and
    passes its own share of each batch."""
    model = Model(dtype, jr.key(0))
    optimiser = optax.adam(1e-2)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    step = make_step(optimiser)
    if mesh is not None:
        model, opt_state = dist.replicate((model, opt_state), mesh)
    losses = []
    for i in range(2):
        x = np.asarray(jr.normal(jr.key(10 + i), (8, 12, 3), dtype))
        y = np.asarray(jr.normal(jr.key(20 + i), (8, 2), dtype))
        if mesh is not None:
            part = dist.process_batch_slice(8, mesh)
            x, y = dist.shard_batch((x[part], y[part]), mesh)
        model, opt_state, loss = step(model, opt_state, x, y)
        losses.append(loss)
    return model, losses


def local_copy(tree):
    """The values of (replicated) global arrays, as NumPy arrays of this process."""
    return jax.tree.map(
        lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x,
        tree,
    )


def check_train():
    mesh = dist.data_mesh()
    assert mesh.shape["data"] == jax.device_count() == DEVICES * jax.process_count()
    info["devices"] = jax.device_count()
    info["processes"] = jax.process_count()
    part = dist.process_batch_slice(8, mesh)
    batch = dist.shard_batch(np.zeros((8, 1))[part], mesh)
    info["devices holding the batch"] = len(batch.sharding.device_set)
    info["global batch shape"] = list(batch.shape)
    if MODE == "multihost":  # a hand-written train step, float64 (exact agreement)
        model, losses = local_copy(train_two_steps(jnp.float64, mesh))
        model_1, losses_1 = train_two_steps(jnp.float64, None)
        diff("float64 params after 2 data-parallel steps", model, model_1)
        diff("float64 losses", np.stack(losses), np.stack(losses_1))
        return
    # `lrc_toolkit.training.fit(mesh=...)`, float32: one epoch of 3 Adam steps
    # (batch 4 = one sequence per device) and the evaluations.
    from types import SimpleNamespace

    from lrc_toolkit.models import LrcSSM
    from lrc_toolkit.training import fit, TrainConfig

    def split(seed, n):
        x = np.asarray(jr.normal(jr.key(seed), (n, 10, 3), jnp.float32))
        y = np.asarray(jr.randint(jr.key(seed + 1), (n,), 0, 2))
        return SimpleNamespace(x=x, y=y, mask=np.ones((n, 10), bool))

    train, val = split(30, 12), split(40, 6)  # 6 % 4 != 0: padded evaluation
    model = LrcSSM(
        3,
        2,
        hidden_size=4,
        state_size=4,
        num_blocks=1,
        dtype=jnp.float32,
        key=jr.key(0),
    )
    config = TrainConfig(epochs=1, batch_size=4, eval_batch_size=8, learning_rate=1e-2)
    runs = [
        fit(model, train, val, config=config, progress=False, mesh=m)
        for m in (mesh, None)
    ]
    diff(
        "float32 fit params after 3 data-parallel steps",
        *(eqx.filter(local_copy(r.last_model), eqx.is_array) for r in runs),
    )
    for key in ("train_loss", "val_loss", "val_accuracy"):
        diff(f"float32 fit {key}", runs[0].history[0][key], runs[1].history[0][key])


if MODE == "solve":
    check_solve()
elif MODE in ("train", "multihost"):
    check_train()
else:
    raise SystemExit(f"unknown mode {MODE!r}")
print("RESULTS " + json.dumps({"diffs": results, "info": info}), flush=True)
if MODE == "multihost":
    jax.distributed.shutdown()
