r"""Block-diagonal Jacobians: $N$ blocks of $k \times k$, one per neuron of a neuron
declaring `jacobian_structure = "block"` and `block_size = k`, whose flat state
holds neuron $i$'s variables at `[i*k:(i+1)*k]`.

A block Jacobian is stored as an array of shape `(..., N, k, k)` (entry
`[n, r, c]` is $\partial f_{nk+r} / \partial x_{nk+c}$), a diagonal one as
`(..., D)` and a dense one as `(..., D, D)`: next to states of shape `(..., D)`
the three are told apart by their number of axes (0, 1 or 2 more than the
state's)."""

import jax
import jax.numpy as jnp


def block_size(neuron) -> int:
    """The size $k$ of a neuron's Jacobian blocks: 1 for a diagonal neuron, the
    declared `block_size` for a block one, the state size for a dense one."""
    structure = neuron.jacobian_structure
    if structure == "diagonal":
        return 1
    if structure == "block":
        return check_block_size(neuron)
    return neuron.state_size


def check_block_size(neuron) -> int:
    """The declared `block_size` of a block neuron, checked against its state size."""
    k = getattr(neuron, "block_size", None)
    name = type(neuron).__name__
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"{name} declares jacobian_structure='block' and must declare the size of "
            f"its blocks as a positive integer class attribute `block_size`, got {k!r}."
        )
    if neuron.state_size % k:
        raise ValueError(
            f"{name} has state_size={neuron.state_size}, not a multiple of its "
            f"block_size={k}: the state holds neuron i's {k} variables at "
            f"[i*{k}:(i+1)*{k}]."
        )
    return k


def kind(jac, state) -> str:
    """`"diagonal"`, `"dense"` or `"block"`: the layout of `jac` next to `state`."""
    extra = jac.ndim - state.ndim
    if extra == 0:
        return "diagonal"
    if extra == 1:
        return "dense"
    if extra == 2:
        return "block"
    raise ValueError(f"Incompatible shapes: Jacobian {jac.shape}, state {state.shape}.")


def as_blocks(v, k: int):
    """`(..., D)` -> `(..., D // k, k)`."""
    return v.reshape(v.shape[:-1] + (v.shape[-1] // k, k))


def block_matvec(jac, v):
    """$J v$ for blocks `jac` `(..., N, k, k)` and `v` `(..., N k)` (elementwise
    products and a sum over the $k$ columns: for small $k$ this fuses, where a
    batched matrix product of tiny matrices does not)."""
    k = jac.shape[-1]
    out = jnp.sum(jac * as_blocks(v, k)[..., None, :], axis=-1)
    return out.reshape(v.shape)


def block_matmul(a, b):
    """The blockwise product $a b$ of two block Jacobians `(..., N, k, k)`."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def matvec(jac, v):
    """$J v$ for a diagonal, dense or block `jac` next to `v`."""
    layout = kind(jac, v)
    if layout == "diagonal":
        return jac * v
    if layout == "dense":
        return jnp.einsum("...ij,...j->...i", jac, v)
    return block_matvec(jac, v)


def compose(a2, a1, state):
    r"""The transition $a_2 a_1$ (first $a_1$, then $a_2$) of two diagonal, dense or
    block transitions laid out next to states shaped like `state`."""
    layout = kind(a1, state)
    if layout == "diagonal":
        return a2 * a1
    if layout == "dense":
        return a2 @ a1
    return block_matmul(a2, a1)


def identity(a, state):
    """The identity transition in the layout (and dtype) of `a`."""
    layout = kind(a, state)
    if layout == "diagonal":
        return jnp.ones_like(a)
    return jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)


def check_recurrence(a, b) -> None:
    """`a` of shape `(T, D)` (diagonal), `(T, D, D)` (dense) or `(T, N, k, k)` with
    $N k = D$ (blocks), next to offsets `b` of shape `(T, D)`."""
    ok = b.ndim == 2 and a.ndim in (2, 3, 4) and a.shape[0] == b.shape[0]
    D = b.shape[-1] if b.ndim else None
    if ok and a.ndim == 2:
        ok = a.shape[1] == D
    elif ok and a.ndim == 3:
        ok = a.shape[1:] == (D, D)
    elif ok:
        ok = a.shape[2] == a.shape[3] and a.shape[1] * a.shape[3] == D
    if not ok:
        raise ValueError(
            "Expected the transitions `a` of shape (T, D) (diagonal), (T, D, D) "
            "(dense) or (T, N, k, k) with N k = D (blocks), and the offsets `b` of "
            f"shape (T, D); got {a.shape} and {b.shape}."
        )


def diagonal(jac, state):
    r"""The diagonal $\partial\Phi_i/\partial x_i$ of `jac`, shape of `state`."""
    layout = kind(jac, state)
    if layout == "diagonal":
        return jac
    d = jnp.diagonal(jac, axis1=-2, axis2=-1)
    return d.reshape(state.shape)


def row_sums(jac, state):
    r"""$\sum_j |J_{ij}|$ for every row $i$, shape of `state`: the gain of the
    row-sum (infinity) norm."""
    layout = kind(jac, state)
    if layout == "diagonal":
        return jnp.abs(jac)
    return jnp.sum(jnp.abs(jac), axis=-1).reshape(state.shape)


def transpose(jac, state):
    """$J^\\top$ (blockwise for blocks)."""
    return jac if kind(jac, state) == "diagonal" else jnp.swapaxes(jac, -1, -2)


def block_jacobian(f, x, k: int):
    r"""`(f(x), J)` with `J` the $k \times k$ diagonal blocks of $\partial f/\partial x$
    at `x` (shape `(..., D)`; `f` maps `(..., D)` to `(..., D)` with independent
    leading axes), from $k$ JVPs: the tangent that is 1 on variable $c$ of every
    neuron gives column $c$ of every block. No $D \times D$ array is formed (the
    off-block entries are assumed zero: see `_solve._linearise.misdeclared`)."""
    value, lin = jax.linearize(f, x)
    N = x.shape[-1] // k
    eye = jnp.eye(k, dtype=x.dtype)
    basis = jnp.tile(eye, (1, N)).reshape((k,) + (1,) * (x.ndim - 1) + (N * k,))
    basis = jnp.broadcast_to(basis, (k,) + x.shape)
    columns = jax.vmap(lin)(basis)  # (k, ..., D): columns[c][..., n k + r] = J_n[r, c]
    columns = as_blocks(columns, k)  # (k, ..., N, r)
    return value, jnp.moveaxis(columns, 0, -1)  # (..., N, r, c)


def value_and_diagonal(f, x, neuron):
    """`f(x)` and the diagonal of its Jacobian $\\partial f_i/\\partial x_i$, for a
    map with `neuron`'s declared structure: one JVP along ones (diagonal), $k$ JVPs
    (blocks of size $k$), the full Jacobian ($D$ JVPs, dense)."""
    if neuron.jacobian_structure == "diagonal":
        return jax.jvp(f, (x,), (jnp.ones_like(x),))
    if neuron.jacobian_structure == "block":
        value, J = block_jacobian(f, x, block_size(neuron))
        return value, jnp.diagonal(J, axis1=-2, axis2=-1).reshape(x.shape)
    J = jax.jacfwd(f, holomorphic=jnp.iscomplexobj(x))(x)
    return f(x), jnp.diagonal(J)
