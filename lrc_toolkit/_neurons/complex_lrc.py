import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Inexact, PRNGKeyArray

from ._init import default_float, elastance, uniform
from .base import AbstractAffineNeuron
from .lrc import LRC


_COMPLEX_CHOICES = ("w_x", "h_x", "sigma_x", "mu_x")
# The parameters that are an LRC's (the real parts of the self-synapses among them).
_REAL_PARAMETERS = (
    "sigma_u", "mu_u", "g_leak", "e_leak", "W_u", "H_u", "sigma_x", "mu_x", "w_x",
    "h_x", "kappa", "beta", "half_width",
)  # fmt: skip


def _complex_dtype(real_dtype) -> jnp.dtype:
    return jnp.dtype(
        jnp.complex128 if jnp.dtype(real_dtype).itemsize == 8 else jnp.complex64
    )


class ComplexLRC(AbstractAffineNeuron):
    r"""The diagonal LRC neuron with a complex state and complex self-synapses
    (the paper's Table 11).

    The equations are those of [`LRC`][lrc_toolkit.LRC] with the state
    $x \in \mathbb{C}^D$ and some self-synapse parameters complex:

    $$
    \begin{aligned}
    s_u &= \sigma(\sigma_u \odot (u - \mu_u)), \qquad
    s_x = \sigma(\sigma_x \odot (x - \mu_x)),\\
    f &= g_\text{leak} + W_u s_u + w_x \odot s_x, \qquad
    z = g_\text{leak} + H_u s_u + h_x \odot s_x,\\
    \frac{dx}{dt} &= \epsilon \odot \big(-\sigma(f) \odot x + e_\text{leak} \odot \tanh(z)\big),
    \qquad \epsilon = \sigma(\kappa \odot x + \beta) \text{ (or as for `LRC`)}.
    \end{aligned}
    $$

    The input synapses ($\sigma_u, \mu_u, W_u, H_u$), the leaks and the elastance
    parameters stay real; `complex_parameters` picks which of the self-synapse
    parameters are complex. The paper's rows are `("w_x", "h_x")` (its
    $g^{\max,x}, k^{\max,x} \in \mathbb{C}$), then `+ "sigma_x"` ($a^x$), then
    `+ "mu_x"` ($b^x$). A model reads the state out through the real part of a
    learned complex linear map, $\operatorname{Re}(C x)$; since
    $\operatorname{Re}(C x) = [\operatorname{Re} C, -\operatorname{Im} C]
    [\operatorname{Re} x; \operatorname{Im} x]$ that is a real linear map of
    [`ComplexLRC.as_real`][lrc_toolkit.ComplexLRC.as_real]`(x)`.

    **Solving it.** Pass a complex initial state (e.g.
    `jnp.zeros(D, neuron.state_dtype)`); every solver then works in complex
    arithmetic. The step map is *holomorphic* in $x$: it is built from sums,
    products, $\sigma$ and $\tanh$, which are holomorphic away from their poles
    ($\operatorname{Re} w = 0$, $\operatorname{Im} w = \pi\,(2k+1)$ for $\sigma(w)$),
    so its derivative is a single complex number per neuron,
    $\partial \Phi_i / \partial x_i \in \mathbb{C}$, and the Newton iteration of
    [`solve_parallel`][lrc_toolkit.solve_parallel] (a JVP with a vector of ones,
    then a complex linear scan) is exact complex Newton. A custom complex neuron
    that is *not* holomorphic (using `abs`, `real`, `conj`, ...) has a real-linear
    but not complex-linear derivative, which one complex number per neuron cannot
    represent: write such a neuron on a real state of twice the size instead.

    **Parameters are stored real.** A complex parameter $p$ is the pair of real
    fields `p` and `p_imag` (e.g. `w_x`, `w_x_imag`), each drawn uniformly in
    $\pm 1/\sqrt{D}$ and combined inside the vector field. Every leaf of the
    module is therefore real, so a real loss has real gradients that any optimiser
    descends correctly. (JAX's gradient of a real function of a complex *leaf* is
    the conjugate of the steepest-descent direction, so `optax` applied to complex
    leaves would ascend in their imaginary parts.)
    """

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    elastance: str = eqx.field(static=True)
    complex_parameters: tuple[str, ...] = eqx.field(static=True)
    jacobian_structure: ClassVar[Literal["diagonal"]] = "diagonal"

    sigma_u: Float[Array, " P"]
    mu_u: Float[Array, " P"]
    g_leak: Float[Array, " D"]
    W_u: Float[Array, "D P"]
    H_u: Float[Array, "D P"]
    e_leak: Float[Array, " D"]
    sigma_x: Float[Array, " D"]
    mu_x: Float[Array, " D"]
    w_x: Float[Array, " D"]
    h_x: Float[Array, " D"]
    sigma_x_imag: Float[Array, " D"] | None
    mu_x_imag: Float[Array, " D"] | None
    w_x_imag: Float[Array, " D"] | None
    h_x_imag: Float[Array, " D"] | None
    kappa: Float[Array, " D"] | None
    beta: Float[Array, " D"] | None
    half_width: Float[Array, " D"] | None

    def __init__(
        self,
        state_size: int,
        input_size: int,
        *,
        complex_parameters: tuple[str, ...] = ("w_x", "h_x", "sigma_x", "mu_x"),
        elastance: Literal["asymmetric", "symmetric", "none"] = "asymmetric",
        init: Literal["reference", "responsive", "biophysical"] = "reference",
        dtype=None,
        key: PRNGKeyArray,
    ):
        r"""**Arguments:**

        - `state_size`: the number of neurons $D$.
        - `input_size`: the number of input channels $P$.
        - `complex_parameters`: which self-synapse parameters are complex, any of
            `"w_x"`, `"h_x"`, `"sigma_x"`, `"mu_x"` (default: all four, the paper's
            best row). An empty tuple gives a real-parameter LRC on a complex state.
        - `elastance`: `"asymmetric"`, `"symmetric"` or `"none"`, as for
            [`LRC`][lrc_toolkit.LRC].
        - `init`: the real parameters are those of
            [`LRC`][lrc_toolkit.LRC]`(init=init)`: `"reference"` (default, the
            paper's), `"responsive"` (the state follows its input from the first
            step; the model's named complex neurons use it) or `"biophysical"`.
        - `dtype`: the real floating dtype of the parameters (default: JAX's
            default); the state dtype is the matching complex dtype.
        - `key`: a `jax.random.key`.
        """
        complex_parameters = tuple(complex_parameters)
        unknown = [p for p in complex_parameters if p not in _COMPLEX_CHOICES]
        if unknown:
            raise ValueError(
                f"`complex_parameters` may contain only {_COMPLEX_CHOICES}, got "
                f"{unknown}."
            )
        dtype = default_float(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"`dtype` is the real dtype of the parameters (e.g. float32), got "
                f"{dtype}; the state's complex dtype follows from it."
            )
        D, P = state_size, input_size
        # The real parameters are an LRC's, initialised as `LRC(init=init)`; the
        # imaginary parts of the complex self-synapses are small, uniform in
        # +-1/sqrt(D).
        key, real_key = jr.split(key)
        real = LRC(D, P, elastance=elastance, init=init, dtype=dtype, key=real_key)
        for name in _REAL_PARAMETERS:
            setattr(self, name, getattr(real, name))
        keys = iter(jr.split(key, 4))
        r = 1 / math.sqrt(D)

        def imag(name):
            if name not in complex_parameters:
                return None
            return uniform(next(keys), (D,), -r, r, dtype)

        self.sigma_x_imag, self.mu_x_imag = imag("sigma_x"), imag("mu_x")
        self.w_x_imag, self.h_x_imag = imag("w_x"), imag("h_x")
        self.state_size = D
        self.input_size = P
        self.elastance = elastance
        self.complex_parameters = tuple(
            p for p in _COMPLEX_CHOICES if p in complex_parameters
        )

    def default_discretisation(self):
        r"""[`ImplicitEuler()`][lrc_toolkit.ImplicitEuler]: A-stable, so no step
        amplifies a component that the ODE damps. The semi-implicit step is not
        enough here: a complex state makes $A(x)$ and $b(x)$ change fast over a
        step, and in `benchmarks/slow_start` the model's complex LRCs raised
        `unstable_step` during training on one seed of two with
        `SemiImplicitEuler()` (explicit Euler before it: the same), while with this
        step both seeds learned (validation loss 0.003 and 0.00004 after 3
        epochs, from 1.13 and 0.78). A training step of `LrcSSM(neuron="complex-lrc")`
        (H = 64, D = 16, T = 896, batch 4, CPU) costs 1.12x the semi-implicit one
        with `Sequential()` and 0.92x with `ParallelNewton()`."""
        from .._discretise import ImplicitEuler

        return ImplicitEuler()

    @property
    def state_dtype(self) -> jnp.dtype:
        """The complex dtype of the state (complex64 for float32 parameters)."""
        return _complex_dtype(self.g_leak.dtype)

    @property
    def self_synapse(self) -> dict[str, Inexact[Array, " D"]]:
        """The self-synapse parameters `w_x`, `h_x`, `sigma_x`, `mu_x`, complex
        (`real + 1j * imag`) for those in `complex_parameters`."""
        out = {}
        for name in _COMPLEX_CHOICES:
            real, imag = getattr(self, name), getattr(self, name + "_imag")
            out[name] = real if imag is None else jax.lax.complex(real, imag)
        return out

    @staticmethod
    def as_real(x: Inexact[Array, "*batch D"]) -> Float[Array, "*batch 2*D"]:
        r"""$[\operatorname{Re} x; \operatorname{Im} x]$ along the last axis: a real
        linear map of this is the real part of a complex linear map of `x`."""
        return jnp.concatenate([jnp.real(x), jnp.imag(x)], axis=-1)

    def drive(self, u: Float[Array, " P"]) -> tuple[Array, Array]:
        r"""Input-only (real) terms: $g_\text{leak} + W_u s_u$ and
        $g_\text{leak} + H_u s_u$."""
        s_u = jax.nn.sigmoid(self.sigma_u * (u - self.mu_u))
        return self.g_leak + self.W_u @ s_u, self.g_leak + self.H_u @ s_u

    def affine_form(self, x, drive):
        if not jnp.iscomplexobj(x):
            raise TypeError(
                f"ComplexLRC has a complex state, but got x of dtype {x.dtype}: start "
                "the solvers from a complex x0, e.g. "
                "`jnp.zeros(neuron.state_size, neuron.state_dtype)`."
            )
        f_u, z_u = drive
        c = lambda a: a.astype(x.dtype)
        p = self.self_synapse
        s_x = jax.nn.sigmoid(c(p["sigma_x"]) * (x - c(p["mu_x"])))
        A = -jax.nn.sigmoid(c(f_u) + c(p["w_x"]) * s_x)
        b = c(self.e_leak) * jnp.tanh(c(z_u) + c(p["h_x"]) * s_x)
        if self.elastance != "none":
            eps = elastance(
                self.elastance, c(self.kappa) * x + c(self.beta), self.half_width
            )
            A, b = A * eps, b * eps
        return A, b
