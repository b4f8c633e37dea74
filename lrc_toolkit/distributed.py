"""Data-parallel training on one device, several local devices or several hosts.

The batch's leading axis is sharded over a one-dimensional
`jax.sharding.Mesh` of every device of every process, and the parameters and
optimiser state are replicated. A train step compiled with `jax.jit` /
`eqx.filter_jit` then runs data-parallel *unchanged*: XLA partitions the batched
forward and backward passes and inserts the all-reduce of the gradients.

```python
import lrc_toolkit.distributed as dist

dist.initialize()                      # no-op unless launched multi-host (see below)
mesh = dist.data_mesh()                # all devices of all hosts, axis "data"
model, opt_state = dist.replicate((model, opt_state), mesh)
for x, y in batches:                   # on each host: its own share of the batch
    x, y = dist.shard_batch((x, y), mesh)
    model, opt_state, loss = train_step(model, opt_state, x, y)
```

Multi-host: start one process per host with the same coordinator address, e.g.
`JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 python
train.py` on the first host and `JAX_PROCESS_ID=1` on the second (see
`docs/scaling.md`).
"""

import os
from collections.abc import Hashable, Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import PyTree


__all__ = [
    "data_mesh",
    "initialize",
    "process_batch_slice",
    "replicate",
    "shard_batch",
]


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-host run (`jax.distributed.initialize`) when one is configured.

    Each argument falls back to an environment variable: `JAX_COORDINATOR_ADDRESS`
    (`host:port` of process 0, reachable from every host), `JAX_NUM_PROCESSES` and
    `JAX_PROCESS_ID` (0 to `num_processes - 1`, one per host). When none is set the
    call does nothing and the run is single-process, so the same script runs on a
    laptop and on a cluster. On clusters JAX detects by itself (SLURM, Open MPI,
    Cloud TPU, Kubernetes) call `jax.distributed.initialize()` directly instead.
    Call it once, before any other JAX call.

    **Arguments:**

    - `coordinator_address`: `"host:port"` of process 0.
    - `num_processes`: the number of processes (usually one per host).
    - `process_id`: this process's index.

    **Returns:**

    Whether a multi-process run was initialised.
    """
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = int(env["JAX_PROCESS_ID"])
    given = (coordinator_address, num_processes, process_id)
    if all(x is None for x in given):
        return False
    if any(x is None for x in given):
        raise ValueError(
            "A multi-host run needs all three of the coordinator address, the number "
            "of processes and this process's id (arguments or the environment "
            "variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); "
            f"got {given}."
        )
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"`process_id` must be in [0, {num_processes}), got {process_id}."
        )
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    return True


def data_mesh(
    devices: Sequence[jax.Device] | None = None, *, axis_name: Hashable = "data"
) -> Mesh:
    """A one-dimensional mesh over `devices` (default: `jax.devices()`, every
    device of every process) for data parallelism.

    Its axis is of type `Auto`: computations on arrays sharded over it are
    partitioned by the compiler, so a train step needs no change.

    **Arguments:**

    - `devices`: the devices to use, default all.
    - `axis_name`: the name of the mesh axis.

    **Returns:**

    A `jax.sharding.Mesh` with the one axis `axis_name`.
    """
    devices = jax.devices() if devices is None else list(devices)
    if len(devices) == 0:
        raise ValueError("`devices` is empty.")
    return Mesh(np.array(devices), (axis_name,), axis_types=(AxisType.Auto,))


def _check_mesh(mesh, axis_name):
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"`mesh` must be a `jax.sharding.Mesh` (see `data_mesh()`), got "
            f"{type(mesh).__name__}."
        )
    if axis_name not in mesh.axis_names:
        raise ValueError(
            f"`axis_name={axis_name!r}` is not an axis of the mesh, whose axes are "
            f"{mesh.axis_names}."
        )


def _local_size(mesh, axis_name) -> int:
    """How many positions along `axis_name` this process's devices cover."""
    axis = mesh.axis_names.index(axis_name)
    here = jax.process_index()
    mine = np.vectorize(lambda d: d.process_index == here)(mesh.devices)
    return int(
        np.any(np.moveaxis(mine, axis, 0).reshape(mine.shape[axis], -1), 1).sum()
    )


def process_batch_slice(
    global_batch_size: int, mesh: Mesh, *, axis_name: Hashable = "data"
) -> slice:
    """The part of a global batch that this process should load and pass to
    [`shard_batch`][lrc_toolkit.distributed.shard_batch].

    With one process it is the whole batch. With several, process $i$ of $n$ gets
    the $i$-th of $n$ equal consecutive parts (every host loads a different share;
    together they form the global batch, in order).

    **Arguments:**

    - `global_batch_size`: the batch size summed over all processes; a multiple of
        the number of devices along `axis_name`.
    - `mesh`, `axis_name`: as for `shard_batch`.

    **Returns:**

    A `slice` of the global batch's indices.
    """
    _check_mesh(mesh, axis_name)
    n = mesh.shape[axis_name]
    if global_batch_size % n:
        raise ValueError(
            f"The global batch size {global_batch_size} must be a multiple of the "
            f"{n} devices along the mesh axis {axis_name!r}."
        )
    local = _local_size(mesh, axis_name)
    per_device = global_batch_size // n
    # Devices of one process are contiguous along a mesh built by `data_mesh`.
    start = jax.process_index() * local * per_device
    return slice(start, start + local * per_device)


def shard_batch(
    batch: PyTree[Any], mesh: Mesh, *, axis_name: Hashable = "data"
) -> PyTree[Any]:
    """Split a batch over the devices of `mesh` along its leading axis.

    Every array leaf (NumPy or JAX) becomes a global `jax.Array` sharded as
    `NamedSharding(mesh, P(axis_name))`. In a multi-process run each process
    passes *its own* share of the batch (see
    [`process_batch_slice`][lrc_toolkit.distributed.process_batch_slice]) and gets
    back the global batch, of leading size (number of processes) × (local size).
    Non-array leaves are left alone.

    **Arguments:**

    - `batch`: a PyTree of arrays with a common leading (batch) axis whose local
        size is a multiple of this process's number of devices on the mesh.
    - `mesh`: e.g. [`data_mesh()`][lrc_toolkit.distributed.data_mesh].
    - `axis_name`: the mesh axis to shard the batch over.

    **Returns:**

    The batch as sharded global arrays.
    """
    _check_mesh(mesh, axis_name)
    local = _local_size(mesh, axis_name)
    sharding = NamedSharding(mesh, P(axis_name))

    def put(x):
        if not eqx.is_array_like(x) or isinstance(x, (bool, int, float, complex)):
            return x
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim == 0 or x.shape[0] % local:
            raise ValueError(
                f"Every batch array needs a leading batch axis whose size (on this "
                f"process) is a multiple of the {local} local devices of the mesh; "
                f"got shape {x.shape}. Choose a batch size divisible by "
                f"{mesh.shape[axis_name]} (the devices along {axis_name!r}), or pad "
                "the batch with zero-weight examples."
            )
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, batch)


def replicate(tree: PyTree[Any], mesh: Mesh) -> PyTree[Any]:
    """Place a copy of every array of `tree` (a model, an optimiser state) on every
    device of `mesh`.

    In a multi-process run every process must pass the same values (same
    initialisation seed, or a checkpoint). Non-array leaves are left alone.

    **Arguments:**

    - `tree`: any PyTree, e.g. `(model, opt_state)`.
    - `mesh`: the mesh.

    **Returns:**

    `tree` with its arrays replicated, `NamedSharding(mesh, P())`.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"`mesh` must be a `jax.sharding.Mesh`, got {type(mesh).__name__}."
        )
    sharding = NamedSharding(mesh, P())

    def put(x):
        if not isinstance(x, (jax.Array, np.ndarray)):
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, tree)
