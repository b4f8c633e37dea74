import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Inexact, PRNGKeyArray

from ._blocks import block_size
from ._discretise import AbstractDiscretisation, Euler
from ._neurons.base import AbstractLiquidNeuron
from ._solve._linearise import drives
from ._solve._validate import check_discretisation, check_neuron, validate


def _param_dtype(neuron) -> jnp.dtype:
    leaves = [
        x
        for x in jax.tree.leaves(neuron)
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return (
        leaves[0].dtype if leaves else jnp.dtype(jax.dtypes.canonicalize_dtype(float))
    )


def check_jacobian_structure(
    neuron: AbstractLiquidNeuron,
    *,
    key: PRNGKeyArray | None = None,
    num_points: int = 8,
    scale: float = 2.0,
    tol: float | None = None,
) -> None:
    r"""Check numerically that a neuron's vector field is what it declares.

    Evaluates `vector_field` at `num_points` random states and inputs (normal, times
    `scale`) and checks that it returns an array of the state's shape and dtype;
    for a neuron declared `jacobian_structure = "diagonal"` (or `"block"`) it also
    computes the full Jacobian $\partial f / \partial x$ there and checks that every
    entry off the diagonal (off the declared $k \times k$ blocks) vanishes, and for
    a block neuron that its `block_size` divides `state_size`.

    **Arguments:**

    - `neuron`: the neuron to check.
    - `key`: a `jax.random.key` for the test points (default: key 0).
    - `num_points`: the number of random points.
    - `scale`: the standard deviation of the random states and inputs.
    - `tol`: the largest tolerated off-diagonal (off-block) magnitude (default: 100
        machine epsilons of the parameters' dtype, relative to the largest diagonal
        (in-block) entry).

    **Raises:**

    `ValueError` naming the coupled neurons (e.g. "dx_3/dt depends on x_0") when a
    neuron declared diagonal (block-diagonal) is not, when a block neuron's
    `block_size` does not divide its state, or when `vector_field` returns the wrong shape
    or dtype. Returns `None` when the check passes.
    """
    check_neuron(neuron)
    structure = neuron.jacobian_structure
    if structure not in ("diagonal", "block", "dense"):
        raise ValueError(
            f"{type(neuron).__name__}.jacobian_structure must be 'diagonal', 'block' "
            f"or 'dense', got {structure!r}."
        )
    k = block_size(neuron)  # checks a block neuron's `block_size`
    dtype = _param_dtype(neuron)
    # A neuron may declare a `state_dtype` other than its parameters' (complex for
    # `ComplexLRC`); its Jacobian is then the holomorphic derivative.
    state_dtype = jnp.dtype(getattr(neuron, "state_dtype", dtype))
    holomorphic = jnp.issubdtype(state_dtype, jnp.complexfloating)
    key = jr.key(0) if key is None else key
    kx, ku = jr.split(key)
    D, P = neuron.state_size, neuron.input_size
    xs = scale * jr.normal(kx, (num_points, D), state_dtype)
    us = scale * jr.normal(ku, (num_points, P), dtype)
    out = jax.eval_shape(neuron.vector_field, xs[0], us[0])
    if out.shape != (D,) or out.dtype != state_dtype:
        raise ValueError(
            f"{type(neuron).__name__}.vector_field(x, u) returned shape {out.shape} and "
            f"dtype {out.dtype} for x of shape ({D},) and dtype {state_dtype}. It must return "
            "dx/dt with the shape and dtype of x: check matrix orientations (W @ u for W "
            "of shape (D, P)) and that no float64 constants are mixed in."
        )
    if structure == "dense":
        return None
    jac = jax.vmap(jax.jacfwd(neuron.vector_field, holomorphic=holomorphic))(xs, us)
    index = jnp.arange(D)
    allowed = index[:, None] // k == index[None, :] // k  # the declared blocks
    off = jnp.where(allowed, 0, jnp.abs(jac))
    in_scale = jnp.maximum(jnp.max(jnp.where(allowed, jnp.abs(jac), 0)), 1.0)
    tol = 100 * jnp.finfo(dtype).eps * in_scale if tol is None else tol
    coupled = np.argwhere(np.asarray(jnp.max(off, axis=0)) > tol)
    if coupled.size:
        more = f" and {len(coupled) - 10} more" if len(coupled) > 10 else ""
        largest = f"{float(jnp.max(off)):.3g}"
        if structure == "diagonal":
            pairs = ", ".join(f"dx_{i}/dt depends on x_{j}" for i, j in coupled[:10])
            raise ValueError(
                f"{type(neuron).__name__} declares jacobian_structure='diagonal' but "
                f"its vector field couples neurons: {pairs}{more} (largest "
                f"off-diagonal |df_i/dx_j| = {largest}). Each neuron may see the state "
                "only through its own component (and all inputs); otherwise declare "
                "jacobian_structure='dense' and solve with method='dense' or 'quasi'."
            )
        pairs = ", ".join(
            f"dx_{i}/dt (neuron {i // k}) depends on x_{j} (neuron {j // k})"
            for i, j in coupled[:10]
        )
        raise ValueError(
            f"{type(neuron).__name__} declares jacobian_structure='block' with "
            f"block_size={k} (neuron n's variables at x[n*{k}:(n+1)*{k}]) but its "
            f"vector field couples variables of different neurons: {pairs}{more} "
            f"(largest off-block |df_i/dx_j| = {largest}). Couple neurons only "
            "through their inputs, or declare jacobian_structure='dense'."
        )
    return None


def transition_factors(
    neuron: AbstractLiquidNeuron,
    x0: ArrayLike,
    inputs: ArrayLike,
    states: ArrayLike,
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation = Euler(),
) -> Inexact[Array, "T D"]:
    r"""The diagonal of the step Jacobian, $\partial \Phi_i / \partial x_i$, along a
    trajectory: entry $t$ is evaluated at $(x_{t-1}, u_t)$ (for an implicit step,
    around $x_t$).

    For a diagonal neuron these are the factors that multiply perturbations from one
    step to the next. Their magnitudes below 1 everywhere mean the recurrence is
    contracting (Newton converges in a few iterations and gradients cannot explode);
    values above 1 flag instability.

    **Arguments:**

    - `neuron`, `x0`, `inputs`, `dt`, `discretisation`: as for
        [`solve`][lrc_toolkit.solve].
    - `states`: the trajectory $x_1, \dots, x_T$ (e.g. `Solution.states`).

    **Returns:**

    An array of shape `(T, D)`.
    """
    check_discretisation(discretisation)
    x0, inputs, dt = validate(neuron, x0, inputs, dt)
    states = jnp.asarray(states, x0.dtype)
    if states.shape != (inputs.shape[0], x0.shape[0]):
        raise ValueError(
            f"`states` must have shape {(inputs.shape[0], x0.shape[0])}, got {states.shape}."
        )
    prev = jnp.concatenate([x0[None], states[:-1]])
    phi = lambda p, g, d, h: discretisation.newton_step(neuron, p, g, d, h)
    jac = jax.vmap(jax.jacfwd(phi, holomorphic=jnp.iscomplexobj(prev)))(
        prev, states, drives(neuron, inputs), dt
    )
    return jnp.diagonal(jac, axis1=-2, axis2=-1)
