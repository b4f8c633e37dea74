r"""Biophysical neurons: populations of $N$ neurons with $k$ coupled variables each
(`jacobian_structure = "block"`), neuron $n$'s variables at `x[n*k:(n+1)*k]`.
Neurons are coupled only through their inputs: each receives the current
$I = I_\text{ext} + W_\text{in} u$ (a learned linear map of the input), so the
Jacobian $\partial f/\partial x$ is block-diagonal."""

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import check_sizes, default_float, uniform
from .base import AbstractLiquidNeuron


class _AbstractPopulation(AbstractLiquidNeuron):
    """Neurons of `block_size` variables driven by the current `i_ext + w_in @ u`;
    a subclass declares its per-neuron parameters in `constants` (name: initial
    value, each a field of shape `(N,)`), the default `input_scale`, and writes
    `cell` on the `(N, k)` array of every neuron's variables."""

    state_size: int
    input_size: int
    w_in: Float[Array, "N P"]
    i_ext: Float[Array, " N"]
    jacobian_structure: ClassVar[str] = "block"
    block_size: eqx.AbstractClassVar[int]
    constants: eqx.AbstractClassVar[dict[str, float]]
    default_input_scale: eqx.AbstractClassVar[float]

    def __init__(
        self,
        state_size: int,
        input_size: int,
        *,
        current: float = 0.0,
        input_scale: float | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `state_size`: $kN$ for $N$ neurons of $k$ = `block_size` variables.
        - `input_size`: the number of input channels $P$.
        - `current`: the initial bias current $I_\\text{ext}$ of every neuron (in
            the units of the equations).
        - `input_scale`: $W_\\text{in}$ is drawn uniformly in
            $\\pm$ `input_scale`$/\\sqrt{P}$ (default: the class's
            `default_input_scale`).
        - `dtype`: the floating dtype of the parameters.
        - `key`: a `jax.random.key`.
        """
        check_sizes(state_size, input_size)
        name, k = type(self).__name__, self.block_size
        if state_size % k:
            raise ValueError(
                f"{name} has {k} variables per neuron: `state_size` must be a "
                f"multiple of {k} (neuron n's variables at x[n*{k}:(n+1)*{k}]), got "
                f"{state_size}."
            )
        dtype = default_float(dtype)
        N = state_size // k
        scale = self.default_input_scale if input_scale is None else input_scale
        r = scale / math.sqrt(input_size)
        self.w_in = uniform(key, (N, input_size), -r, r, dtype)
        self.i_ext = jnp.full((N,), current, dtype)
        self.state_size, self.input_size = state_size, input_size
        for field, value in self.constants.items():
            setattr(self, field, jnp.full((N,), value, dtype))

    @abc.abstractmethod
    def cell(self, x: Float[Array, "N k"], current: Float[Array, " N"]) -> Array:
        """The time derivatives of every neuron's variables, shape `(N, k)`."""

    def drive(self, u: Float[Array, " P"]) -> Float[Array, " N"]:
        """The input current of every neuron, $I_\\text{ext} + W_\\text{in} u$."""
        return self.i_ext + self.w_in @ u

    def driven_vector_field(self, x, drive):
        return self.cell(x.reshape(-1, self.block_size), drive).reshape(x.shape)

    def vector_field(self, x, u):
        return self.driven_vector_field(x, self.drive(u))


class FitzHughNagumo(_AbstractPopulation):
    r"""FitzHugh–Nagumo neurons (FitzHugh, 1961; Nagumo et al., 1962): a voltage
    $v$ and a recovery variable $w$ per neuron, state $(v_0, w_0, v_1, w_1, \ldots)$,

    $$\frac{dv}{dt} = v - \frac{v^3}{3} - w + I, \qquad
    \frac{dw}{dt} = \varepsilon\,(v + a - b\,w),$$

    with FitzHugh's $a = 0.7$, $b = 0.8$, $\varepsilon = 0.08$ (dimensionless
    time) and $I = I_\text{ext} + W_\text{in} u$. A neuron at rest ($I = 0$) fires
    periodically for constant $I$ in about $(0.33, 1.42)$. The step is locally
    expanding near $v = 0$ (slope $1 - v^2$); `ParallelNewton()` converges on it
    with its automatic damping.

    ??? cite "References"

        ```bibtex
        @article{fitzhugh1961impulses,
          title={Impulses and physiological states in theoretical models of nerve membrane},
          author={FitzHugh, Richard}, journal={Biophysical Journal},
          volume={1}, number={6}, pages={445--466}, year={1961}
        }
        ```
    """

    a: Float[Array, " N"]
    b: Float[Array, " N"]
    eps: Float[Array, " N"]
    block_size: ClassVar[int] = 2
    constants: ClassVar[dict[str, float]] = {"a": 0.7, "b": 0.8, "eps": 0.08}
    default_input_scale: ClassVar[float] = 0.5

    def cell(self, x, current):
        v, w = x[:, 0], x[:, 1]
        dv = v - v**3 / 3 - w + current
        dw = self.eps * (v + self.a - self.b * w)
        return jnp.stack([dv, dw], axis=-1)


class MorrisLecar(_AbstractPopulation):
    r"""Morris–Lecar neurons (Morris & Lecar, 1981) with the parameters of Rinzel &
    Ermentrout (1989) (type II, Hopf): per neuron a voltage $V$ (mV) and the
    potassium activation $w$, state $(V_0, w_0, V_1, w_1, \ldots)$, time in ms,

    $$C \frac{dV}{dt} = I - g_L (V - V_L) - g_\text{Ca}\, m_\infty(V)\,(V - V_\text{Ca})
    - g_K\, w\, (V - V_K), \qquad \frac{dw}{dt} = \phi\,\frac{w_\infty(V) - w}{\tau_w(V)},$$

    $m_\infty = \tfrac12 (1 + \tanh\frac{V - V_1}{V_2})$,
    $w_\infty = \tfrac12 (1 + \tanh\frac{V - V_3}{V_4})$,
    $\tau_w = 1 / \cosh\frac{V - V_3}{2 V_4}$; $C = 20\,\mu$F/cm², $g_L = 2$,
    $g_\text{Ca} = 4.4$, $g_K = 8$ mS/cm², $V_L = -60$, $V_\text{Ca} = 120$,
    $V_K = -84$, $V_1 = -1.2$, $V_2 = 18$, $V_3 = 2$, $V_4 = 30$ mV, $\phi = 0.04$
    /ms; $I = I_\text{ext} + W_\text{in} u$ in $\mu$A/cm² (repetitive firing from
    about 90). The conductances and reversal potentials are learned per neuron; the
    gating constants are fixed.

    ??? cite "References"

        ```bibtex
        @article{morris1981voltage,
          title={Voltage oscillations in the barnacle giant muscle fiber},
          author={Morris, Catherine and Lecar, Harold}, journal={Biophysical Journal},
          volume={35}, number={1}, pages={193--213}, year={1981}
        }
        @incollection{rinzel1989analysis,
          title={Analysis of neural excitability and oscillations},
          author={Rinzel, John and Ermentrout, G. Bard},
          booktitle={Methods in Neuronal Modeling}, publisher={MIT Press}, year={1989}
        }
        ```
    """

    c_m: Float[Array, " N"]
    g_l: Float[Array, " N"]
    g_ca: Float[Array, " N"]
    g_k: Float[Array, " N"]
    v_l: Float[Array, " N"]
    v_ca: Float[Array, " N"]
    v_k: Float[Array, " N"]
    phi: Float[Array, " N"]
    block_size: ClassVar[int] = 2
    constants: ClassVar[dict[str, float]] = {
        "c_m": 20.0,
        "g_l": 2.0,
        "g_ca": 4.4,
        "g_k": 8.0,
        "v_l": -60.0,
        "v_ca": 120.0,
        "v_k": -84.0,
        "phi": 0.04,
    }
    default_input_scale: ClassVar[float] = 20.0

    v1: ClassVar[float] = -1.2
    v2: ClassVar[float] = 18.0
    v3: ClassVar[float] = 2.0
    v4: ClassVar[float] = 30.0

    def cell(self, x, current):
        V, w = x[:, 0], x[:, 1]
        m_inf = 0.5 * (1 + jnp.tanh((V - self.v1) / self.v2))
        w_inf = 0.5 * (1 + jnp.tanh((V - self.v3) / self.v4))
        rate = self.phi * jnp.cosh((V - self.v3) / (2 * self.v4))  # phi / tau_w
        i_ion = (
            self.g_l * (V - self.v_l)
            + self.g_ca * m_inf * (V - self.v_ca)
            + self.g_k * w * (V - self.v_k)
        )
        dV = (current - i_ion) / self.c_m
        dw = rate * (w_inf - w)
        return jnp.stack([dV, dw], axis=-1)


def _exprel(x):
    """$x / (1 - e^{-x})$, smooth through its removable singularity at 0."""
    small = jnp.abs(x) < 1e-3
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1 + x / 2 + x**2 / 12, safe / -jnp.expm1(-safe))


class HodgkinHuxley(_AbstractPopulation):
    r"""Hodgkin–Huxley neurons (Hodgkin & Huxley, 1952), in the modern convention
    (rest near $-65$ mV, time in ms): per neuron $(V, m, h, n)$, state
    $(V_0, m_0, h_0, n_0, V_1, \ldots)$,

    $$C \frac{dV}{dt} = I - g_\text{Na} m^3 h (V - E_\text{Na}) - g_K n^4 (V - E_K)
    - g_L (V - E_L), \qquad \frac{dz}{dt} = \alpha_z(V)(1 - z) - \beta_z(V)\, z$$

    for $z \in \{m, h, n\}$, with $\alpha_m = 0.1(V+40)/(1 - e^{-(V+40)/10})$,
    $\beta_m = 4 e^{-(V+65)/18}$, $\alpha_h = 0.07 e^{-(V+65)/20}$,
    $\beta_h = 1/(1 + e^{-(V+35)/10})$, $\alpha_n = 0.01(V+55)/(1 - e^{-(V+55)/10})$,
    $\beta_n = 0.125 e^{-(V+65)/80}$ (per ms); $C = 1\,\mu$F/cm²,
    $g_\text{Na} = 120$, $g_K = 36$, $g_L = 0.3$ mS/cm², $E_\text{Na} = 50$,
    $E_K = -77$, $E_L = -54.387$ mV; $I = I_\text{ext} + W_\text{in} u$ in
    $\mu$A/cm² (repetitive firing from about 6.3). The conductances and reversal
    potentials are learned per neuron; the rate functions are fixed.

    Stiff: the activation $m$ relaxes in about 0.1 ms, so explicit Euler needs
    $\Delta t \lesssim 0.02$ ms; [`ImplicitEuler()`][lrc_toolkit.ImplicitEuler]
    (sequentially or by `ParallelNewton`) or `ODE` with an implicit Diffrax solver
    take larger steps.

    ??? cite "References"

        ```bibtex
        @article{hodgkin1952quantitative,
          title={A quantitative description of membrane current and its application
                 to conduction and excitation in nerve},
          author={Hodgkin, Alan L. and Huxley, Andrew F.},
          journal={The Journal of Physiology}, volume={117}, number={4},
          pages={500--544}, year={1952}
        }
        ```
    """

    c_m: Float[Array, " N"]
    g_na: Float[Array, " N"]
    g_k: Float[Array, " N"]
    g_l: Float[Array, " N"]
    e_na: Float[Array, " N"]
    e_k: Float[Array, " N"]
    e_l: Float[Array, " N"]
    block_size: ClassVar[int] = 4
    constants: ClassVar[dict[str, float]] = {
        "c_m": 1.0,
        "g_na": 120.0,
        "g_k": 36.0,
        "g_l": 0.3,
        "e_na": 50.0,
        "e_k": -77.0,
        "e_l": -54.387,
    }
    default_input_scale: ClassVar[float] = 10.0

    def cell(self, x, current):
        V, m, h, n = (x[:, i] for i in range(4))
        alpha_m = _exprel((V + 40) / 10)
        beta_m = 4 * jnp.exp(-(V + 65) / 18)
        alpha_h = 0.07 * jnp.exp(-(V + 65) / 20)
        beta_h = jax.nn.sigmoid((V + 35) / 10)
        alpha_n = 0.1 * _exprel((V + 55) / 10)
        beta_n = 0.125 * jnp.exp(-(V + 65) / 80)
        i_ion = (
            self.g_na * m**3 * h * (V - self.e_na)
            + self.g_k * n**4 * (V - self.e_k)
            + self.g_l * (V - self.e_l)
        )
        dV = (current - i_ion) / self.c_m
        dm = alpha_m * (1 - m) - beta_m * m
        dh = alpha_h * (1 - h) - beta_h * h
        dn = alpha_n * (1 - n) - beta_n * n
        return jnp.stack([dV, dm, dh, dn], axis=-1)


class AdaptiveTheta(_AbstractPopulation):
    r"""Theta neurons with spike-frequency adaptation: the smooth form of the
    quadratic integrate-and-fire (Izhikevich) neuron. With $v = \tan(\theta/2)$ the
    quadratic neuron $\dot v = v^2 + \eta$ becomes the theta neuron of Ermentrout &
    Kopell (1986), whose reset at $v = \infty$ is the smooth passage of the phase
    $\theta$ through $\pi$ (a spike). Per neuron $(\theta, a)$, state
    $(\theta_0, a_0, \theta_1, a_1, \ldots)$, dimensionless time,

    $$\frac{d\theta}{dt} = 1 - \cos\theta + (1 + \cos\theta)(I - a), \qquad
    \tau_a \frac{da}{dt} = -a + g_a\,\frac{1 - \cos\theta}{2},$$

    an adaptation current $a$ that each spike ($\frac{1 - \cos\theta}{2} = 1$ at
    $\theta = \pi$) raises and that decays in $\tau_a = 20$, with strength
    $g_a = 0.5$; $I = I_\text{ext} + W_\text{in} u$. For constant $I > 0$ the
    neuron fires, at a rate that adapts down from $\sqrt{I}/\pi$; for $I < 0$ it
    is excitable. $\theta$ grows by $2\pi$ per spike.

    ??? cite "References"

        ```bibtex
        @article{ermentrout1986parabolic,
          title={Parabolic bursting in an excitable system coupled with a slow oscillation},
          author={Ermentrout, G. Bard and Kopell, Nancy},
          journal={SIAM Journal on Applied Mathematics}, volume={46}, number={2},
          pages={233--253}, year={1986}
        }
        @article{ermentrout1998linearization,
          title={Linearization of {F-I} curves by adaptation},
          author={Ermentrout, Bard}, journal={Neural Computation},
          volume={10}, number={7}, pages={1721--1729}, year={1998}
        }
        ```
    """

    tau_a: Float[Array, " N"]
    g_a: Float[Array, " N"]
    block_size: ClassVar[int] = 2
    constants: ClassVar[dict[str, float]] = {"tau_a": 20.0, "g_a": 0.5}
    default_input_scale: ClassVar[float] = 0.5

    def cell(self, x, current):
        theta, a = x[:, 0], x[:, 1]
        c = jnp.cos(theta)
        dtheta = 1 - c + (1 + c) * (current - a)
        da = (-a + self.g_a * (1 - c) / 2) / self.tau_a
        return jnp.stack([dtheta, da], axis=-1)
