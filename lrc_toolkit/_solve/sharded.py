from collections.abc import Hashable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import Array, Inexact

from .._blocks import check_recurrence, identity, matvec
from .._checks import check_choice
from .linear_scan import AbstractRecurrence, combine, SCANS, sequential


def _check_mesh(mesh, axis_name) -> None:
    if not isinstance(mesh, Mesh):
        raise TypeError(
            "`mesh` must be a `jax.sharding.Mesh`, e.g. "
            "`jax.make_mesh((jax.device_count(),), ('time',))`; got "
            f"{type(mesh).__name__}."
        )
    if axis_name not in mesh.axis_names:
        raise ValueError(
            f"`axis_name={axis_name!r}` is not an axis of the mesh, whose axes are "
            f"{mesh.axis_names}. Pass the name of the mesh axis to shard time over."
        )


def _time_sharded(x, mesh, axis_name):
    """Lay `x` out along `axis_name` on its leading (time) axis: `jax.reshard` on a
    mesh axis of type `Explicit`, a sharding constraint on an `Auto` one."""
    spec = P(axis_name, *(None,) * (x.ndim - 1))
    sharding = NamedSharding(mesh, spec)
    if mesh._name_to_type[axis_name] == AxisType.Explicit:
        return jax.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def _auto(mesh):
    return Mesh(
        mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim
    )


def _replicated(x, mesh):
    sharding = NamedSharding(mesh, P())
    if any(t == AxisType.Explicit for t in mesh.axis_types):
        return jax.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def _fold(a, b, reverse):
    """The affine map $(A, B)$ of a whole chunk, by a sequential fold: the state
    leaving the chunk is $A x_\text{in} + B$."""

    def step(carry, ab):
        return combine(carry, ab), None

    start = (identity(a[0], b[0]), jnp.zeros_like(b[0]))
    (A, B), _ = jax.lax.scan(step, start, (a, b), reverse=reverse)
    return A, B


def _chunk_recurrence(a, b, axis_name, reverse, scan):
    r"""The body run by each device on its chunk of the time axis.

    1. The chunk's summary: the affine map $(A_c, B_c)$ from the state entering the
       chunk to the state leaving it (the product of the chunk's $a$, and its
       solution from a zero carry).
    2. The $n$ summaries are all-gathered ($n$ pairs of size $D$, $D k$ or $D^2$,
       independent of $T$) and one tiny scan over them gives the state leaving every
       chunk; the carry into chunk $c$ is the state leaving chunk $c - 1$ (chunk
       $c + 1$ if `reverse`).
    3. Each chunk applies its carry. With `scan="associative"` step 1 is an
       associative scan whose prefix products $A_t$ and local solutions $B_t$ give
       $x_t = B_t + A_t x_\text{in}$ at once. With `scan="sequential"` (less work,
       the fast choice on CPUs) step 1 is a fold and step 3 a second pass with the
       carry folded into the chunk's first offset, $b_1 \leftarrow b_1 + a_1 x_\text{in}$.
    """
    edge = 0 if reverse else -1
    if scan == "associative":
        cum_a, local = jax.lax.associative_scan(combine, (a, b), reverse=reverse)
        summary_a, summary_b = cum_a[edge], local[edge]
    else:
        summary_a, summary_b = _fold(a, b, reverse)
    summaries_a = jax.lax.all_gather(summary_a, axis_name)  # (n,) + a's step shape
    summaries_b = jax.lax.all_gather(summary_b, axis_name)  # (n, D)
    leaving = sequential(summaries_a, summaries_b, reverse)
    zero = jnp.zeros_like(leaving[:1])
    if reverse:
        incoming = jnp.concatenate([leaving[1:], zero], axis=0)
    else:
        incoming = jnp.concatenate([zero, leaving[:-1]], axis=0)
    carry = incoming[jax.lax.axis_index(axis_name)]
    if scan == "associative":
        return local + matvec(cum_a, jnp.broadcast_to(carry, local.shape))
    first = -1 if reverse else 0  # the step the carry enters at
    kick = matvec(a[first], carry)
    return sequential(a, b.at[first].add(kick), reverse)


def sharded_linear_recurrence(
    a: Inexact[Array, "T D"] | Inexact[Array, "T D D"] | Inexact[Array, "T N K K"],
    b: Inexact[Array, "T D"],
    *,
    mesh: Mesh,
    axis_name: Hashable = "time",
    reverse: bool = False,
    scan: Literal["auto", "associative", "sequential"] = "auto",
) -> Inexact[Array, "T D"]:
    r"""Solve $x_t = a_t x_{t-1} + b_t$ ($x_0 = 0$) with the time axis sharded over
    one axis of a device mesh: the drop-in, multi-device counterpart of
    [`linear_recurrence`][lrc_toolkit.linear_recurrence].

    Each of the $n$ devices along `axis_name` holds a chunk of $T/n$ steps and runs
    the associative scan on it alone; the chunks' affine summaries
    $(A_c, B_c)$ (the map from the state entering chunk $c$ to the state leaving it)
    are all-gathered and combined by a scan of length $n$; each chunk then applies
    its incoming carry, $x_t = B_t + A_t\, x_\text{in}$. Communication per call is
    one all-gather of $n$ summaries of size $D$ (diagonal), $D k$ (blocks of
    $k \times k$) or $D^2$ (dense), independent of $T$. Runs under
    `jax.shard_map`; differentiable.

    When $T$ is not a multiple of $n$ the sequence is padded with
    $(a, b) = (0, 0)$ steps at its end (which leave the solution unchanged in both
    directions) and the padding is dropped from the result.

    **Arguments:**

    - `a`: the transitions, diagonal `(T, D)`, dense `(T, D, D)` or block-diagonal
        `(T, N, k, k)` with $N k = D$ (as for
        [`linear_recurrence`][lrc_toolkit.linear_recurrence]).
    - `b`: the offsets, `(T, D)`.
    - `mesh`: a `jax.sharding.Mesh`.
    - `axis_name`: the mesh axis to shard time over; other mesh axes replicate.
    - `reverse`: solve $x_t = a_t x_{t+1} + b_t$ backwards in time instead.
    - `scan`: the algorithm within each chunk: `"associative"` ($O(\log(T/n))$
        depth, the choice for GPUs and TPUs), `"sequential"` (a fold then a second
        pass, the least work: the choice for CPUs), or `"auto"` (by the platform of
        the mesh's devices).

    **Returns:**

    The states $x_1, \dots, x_T$, shape `(T, D)`, sharded along `axis_name`.
    """
    _check_mesh(mesh, axis_name)
    check_recurrence(a, b)
    check_choice("scan", scan, SCANS)
    if scan == "auto":
        cpu = mesh.devices.flat[0].platform == "cpu"
        scan = "sequential" if cpu else "associative"
    T = b.shape[0]
    n = mesh.shape[axis_name]
    pad = (-T) % n
    if pad:
        a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)], axis=0)
        b = jnp.concatenate([b, jnp.zeros((pad,) + b.shape[1:], b.dtype)], axis=0)
    a, b = _time_sharded(a, mesh, axis_name), _time_sharded(b, mesh, axis_name)
    spec_a = P(axis_name, *(None,) * (a.ndim - 1))
    spec_b = P(axis_name, None)
    body = lambda a, b: _chunk_recurrence(a, b, axis_name, reverse, scan)
    x = jax.shard_map(
        body, mesh=mesh, in_specs=(spec_a, spec_b), out_specs=spec_b, check_vma=False
    )(a, b)
    if pad:
        # Unequal chunks cannot stay sharded: gather, then drop the padding.
        x = _replicated(x, mesh)[:T]
    return x


def _pad_time(x, pad):
    """Repeat the last step `pad` times; the copies carry no gradient."""
    tail = jax.lax.stop_gradient(jnp.repeat(x[-1:], pad, axis=0))
    return jnp.concatenate([x, tail], axis=0)


class ShardedScan(AbstractRecurrence):
    r"""The time axis sharded across the devices of a mesh (sequence parallelism),
    as the recurrence of [`ParallelNewton`][lrc_toolkit.ParallelNewton]:
    `solve(neuron, x0, inputs, solver=ParallelNewton(recurrence=ShardedScan(mesh)))`.

    The Newton iteration is unchanged: the inputs, the iterate and every per-step
    quantity are laid out along `axis_name` of `mesh`, so each device evaluates the
    neuron on its own chunk of time steps, and each linear recurrence (forward and
    the adjoint's) is solved by
    [`sharded_linear_recurrence`][lrc_toolkit.sharded_linear_recurrence] (chunk
    scans + an all-gather of the chunks' affine summaries). The convergence test is a
    reduction over the whole time axis, so all devices stop together.

    When $T$ is not a multiple of the number of devices along `axis_name`, the
    sequence is padded at its end by repeating the last input (and `dt`, `init`);
    the padded steps are dropped from the result, cannot affect earlier states (the
    recurrence is causal) and receive no gradient.

    **Arguments:**

    - `mesh`: a `jax.sharding.Mesh`, e.g.
        `jax.make_mesh((jax.device_count(),), ("time",))`.
    - `axis_name`: the mesh axis to shard time over (default `"time"`).
    """

    mesh: Mesh = eqx.field(static=True)
    axis_name: Hashable = eqx.field(default="time", static=True)

    def __check_init__(self):
        _check_mesh(self.mesh, self.axis_name)

    def __call__(self, a, b, reverse=False):
        return sharded_linear_recurrence(
            a, b, mesh=_auto(self.mesh), axis_name=self.axis_name, reverse=reverse
        )

    def around(self, solve_fn, x0, inputs, dt, init):
        # The Newton loop is written for automatic (GSPMD) partitioning, e.g. its
        # shift by one time step crosses chunk boundaries; run it with every mesh
        # axis of type `Auto`.
        for leaf in jax.tree.leaves(eqx.filter((x0, inputs, dt, init), eqx.is_array)):
            if any(
                t == AxisType.Explicit
                for t in jax.typeof(leaf).sharding.mesh.axis_types
            ):
                raise ValueError(
                    "`ShardedScan` got an array sharded on a mesh with `Explicit` "
                    "axes. Pass unsharded (or `Auto`-mesh) arrays, e.g. build the mesh "
                    "with `jax.make_mesh(shape, names, axis_types=(AxisType.Auto,) * "
                    "len(names))` or `jax.sharding.Mesh(devices, names)`."
                )
        mesh = _auto(self.mesh)
        T, D = inputs.shape[0], x0.shape[0]
        if init is None:
            init = jnp.zeros((T, D), x0.dtype)
        n = mesh.shape[self.axis_name]
        pad = (-T) % n
        if pad:
            inputs, dt, init = (_pad_time(x, pad) for x in (inputs, dt, init))
        inputs, dt, init = (
            _time_sharded(x, mesh, self.axis_name) for x in (inputs, dt, init)
        )
        sol = solve_fn(x0, inputs, dt, init)
        states = _time_sharded(sol.states, mesh, self.axis_name)
        if pad:
            states = states[:T]
        return eqx.tree_at(lambda s: s.states, sol, states)
