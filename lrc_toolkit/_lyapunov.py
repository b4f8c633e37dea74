import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Inexact, PRNGKeyArray, PyTree, Real

from ._checks import check_integer
from ._discretise import AbstractDiscretisation
from ._neurons.base import AbstractLiquidNeuron
from ._solve._linearise import drives, shifted
from ._solve._validate import check_discretisation, validate


def _check_count(name: str, value, limit: int | None = None) -> int:
    value = check_integer(name, value)
    if limit is not None and value > limit:
        raise ValueError(
            f"`num_exponents={value}` exceeds the dimension of the tangent space, "
            f"{limit} (the state's real dimension: state_size, or twice it for a "
            "complex state). Ask for at most that many exponents."
        )
    return value


# The tangents of a complex state live in C^D = R^{2D}: they are stored as complex
# arrays (so the JVPs of Φ apply the real-linear step Jacobian to them, holomorphic
# or not), and orthonormalised in the real picture, stacking real and imaginary
# parts.
def _to_real(V: Inexact[Array, "D k"]) -> Float[Array, "n k"]:
    return jnp.concatenate([V.real, V.imag]) if jnp.iscomplexobj(V) else V


def _from_real(V: Float[Array, "n k"], like: Inexact[Array, "D k"]):
    if jnp.iscomplexobj(like):
        D = like.shape[0]
        return jax.lax.complex(V[:D], V[D:])
    return V


@eqx.filter_jit
def _exponents(
    neuron: AbstractLiquidNeuron,
    discretisation: AbstractDiscretisation,
    prev: Inexact[Array, "T D"],
    states: Inexact[Array, "T D"],
    drive: PyTree[Array],
    dt: Real[Array, " T"],
    V0: Inexact[Array, "D k"],
    every: int,
) -> Float[Array, " k"]:
    T = states.shape[0]

    def body(carry, xs):
        V, logs = carry
        t, p, x, d, h = xs
        # One linearisation per step, applied to the k tangents: k JVPs, never the
        # D x D Jacobian. `newton_step` has the step's derivative in x_{t-1} for
        # implicit steps too (linearised around the known x_t).
        _, jvp = jax.linearize(
            lambda q: discretisation.newton_step(neuron, q, x, d, h), p
        )
        V = jax.vmap(jvp, in_axes=1, out_axes=1)(V)

        def renormalise(V):
            Q, R = jnp.linalg.qr(_to_real(V))
            growth = jnp.abs(jnp.diagonal(R))
            return _from_real(Q, V), jnp.log(growth)

        def keep(V):
            return V, jnp.zeros(V.shape[1], logs.dtype)

        due = ((t + 1) % every == 0) | (t == T - 1)
        V, log_growth = jax.lax.cond(due, renormalise, keep, V)
        return (V, logs + log_growth), None

    real = jnp.finfo(states.dtype).dtype
    init = (V0, jnp.zeros(V0.shape[1], real))
    (_, logs), _ = jax.lax.scan(
        body, init, (jnp.arange(T), prev, states, drive, dt.astype(real))
    )
    return logs / T


def lyapunov_exponent(
    neuron: AbstractLiquidNeuron,
    x0: ArrayLike,
    inputs: ArrayLike,
    *,
    dt: ArrayLike = 1.0,
    discretisation: AbstractDiscretisation | None = None,
    states: ArrayLike | None = None,
    num_exponents: int | None = None,
    reorthonormalise_every: int = 1,
    key: PRNGKeyArray | None = None,
) -> Float[Array, ""] | Float[Array, " k"]:
    r"""The Lyapunov exponents of the recurrence $x_t = \Phi(x_{t-1}, u_t;
    \Delta t_t)$ along a trajectory: the mean log growth per step of perturbations.

    With $J_t = \partial\Phi/\partial x_{t-1}$ at step $t$, the largest exponent is
    $\lambda_1 = \frac{1}{T}\log\lVert J_T \cdots J_1 v\rVert$ for a (random) unit
    tangent $v$. It is computed by propagating $v$ with one JVP of $\Phi$ per step
    and renormalising it, so no $D \times D$ Jacobian is formed. With
    `num_exponents=k`, $k$ orthonormal tangents are propagated and
    re-orthonormalised by a QR decomposition (the standard QR method): the
    exponents are the mean logs of $|R_{ii}|$.

    $\lambda_1 < 0$ means the recurrence is predictable (perturbations shrink), and
    then Newton's method on the whole sequence
    ([`ParallelNewton`][lrc_toolkit.ParallelNewton], DEER) converges in few
    iterations; $\lambda_1 > 0$ means it is chaotic and Newton may need up to $T$.

    The exponents are **per step**; divide by $\Delta t$ for exponents per unit
    time (for a constant step). They are finite-time estimates that include the
    transient from `x0`; drop a burn-in by starting from a later state (`x0 =
    states[t0]`, `inputs[t0 + 1:]`). A tangent that is mapped to zero gives $-\infty$.

    A complex state (e.g. [`ComplexLRC`][lrc_toolkit.ComplexLRC]) is treated as a
    real one of twice the dimension: its tangents live in $\mathbb{R}^{2D}$, the
    JVPs apply the real-linear step Jacobian and the QR is real, so up to $2D$
    exponents exist.

    **Arguments:**

    - `neuron`, `x0`, `inputs`, `dt`: as for [`solve`][lrc_toolkit.solve].
    - `discretisation`: the step $\Phi$; default `neuron.default_discretisation()`.
    - `states`: the trajectory $x_1, \dots, x_T$ (e.g. `Solution.states`); default:
        computed with [`Sequential`][lrc_toolkit.Sequential] and `discretisation`.
    - `num_exponents`: `None` (default) for the largest exponent only, as a scalar;
        an integer $k$ for the $k$ largest, as an array of shape `(k,)`, in
        decreasing order. At most the state's real dimension.
    - `reorthonormalise_every`: renormalise the tangents every this many steps
        (and after the last one) rather than every step; saves the QRs, but the
        tangents may overflow or collapse onto one direction in between.
    - `key`: a `jax.random.key` for the initial tangents (default: key 0).

    **Returns:**

    A real scalar (`num_exponents=None`) or an array of shape `(num_exponents,)`:
    the exponents per step.

    ??? cite "Reference"

        ```bibtex
        @inproceedings{gonzalez2025predictability,
            title={Predictability Enables Parallelization of Nonlinear State
                Space Models},
            author={Gonzalez, Xavier and Kozachkov, Leo and Zoltowski, David M.
                and Clarkson, Kenneth L. and Linderman, Scott W.},
            booktitle={Advances in Neural Information Processing Systems},
            year={2025}
        }
        ```
    """
    from ._solve.sequential import Sequential
    from ._solve.solve import solve

    if discretisation is None:
        discretisation = neuron.default_discretisation()
    check_discretisation(discretisation)
    x0, inputs, dt = validate(neuron, x0, inputs, dt)
    dimension = neuron.state_size * (2 if jnp.iscomplexobj(x0) else 1)
    k = 1 if num_exponents is None else num_exponents
    _check_count("num_exponents", k, dimension)
    every = _check_count("reorthonormalise_every", reorthonormalise_every)
    if states is None:
        # Expanding dynamics are what is measured here: no stability check.
        states = solve(
            neuron,
            x0,
            inputs,
            solver=Sequential(check_stability=False),
            dt=dt,
            discretisation=discretisation,
        ).states
    states = jnp.asarray(states)
    if states.shape != (inputs.shape[0], x0.shape[0]):
        raise ValueError(
            f"`states` must have shape {(inputs.shape[0], x0.shape[0])} (T, "
            f"state_size) for `inputs` of shape {inputs.shape}, got {states.shape}."
        )
    states = states.astype(x0.dtype)
    real = jnp.finfo(x0.dtype).dtype
    key = jr.key(0) if key is None else key
    V0, _ = jnp.linalg.qr(jr.normal(key, (dimension, k), real))
    V0 = _from_real(V0, jnp.zeros((x0.shape[0], k), x0.dtype))
    exponents = _exponents(
        neuron,
        discretisation,
        shifted(x0, states),
        states,
        drives(neuron, inputs),
        dt,
        V0,
        every,
    )
    if num_exponents is None:
        return exponents[0]
    return jnp.sort(exponents)[::-1]
