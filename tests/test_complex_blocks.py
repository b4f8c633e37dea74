"""`ComplexLRC` as a population of 2x2 real blocks: the complex neuron solved in
complex arithmetic and its real block form (state `[Re x_0, Im x_0, Re x_1, ...]`,
`jacobian_structure="block"`, `block_size=2`) give the same states and the same
parameter gradients, both equal to an independent `lax.scan` of the Euler step."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from jaxtyping import Array, Complex, Float, PyTree

import lrc_toolkit as lt

from .helpers import max_abs_diff


D, P, T = 4, 3, 24


def to_blocks(z: Complex[Array, "*batch D"]) -> Float[Array, "*batch 2*D"]:
    """`[Re z_0, Im z_0, Re z_1, Im z_1, ...]` along the last axis."""
    pairs = jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)
    return pairs.reshape(z.shape[:-1] + (2 * z.shape[-1],))


def from_blocks(x: Float[Array, "*batch 2*D"]) -> Complex[Array, "*batch D"]:
    """The inverse of `to_blocks`."""
    return jax.lax.complex(x[..., 0::2], x[..., 1::2])


class ComplexAsBlocks(lt.AbstractLiquidNeuron):
    """A `ComplexLRC` on a real state: neuron $i$'s complex state $x_i$ is the block
    `[Re x_i, Im x_i]`, and the vector field is the complex one mapped through
    (real-linear, so the Jacobian is block-diagonal with 2x2 blocks
    `[[a, -b], [b, a]]` where the complex derivative is $a + ib$)."""

    neuron: lt.ComplexLRC
    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[str] = "block"
    block_size: ClassVar[int] = 2

    def __init__(self, neuron: lt.ComplexLRC):
        self.neuron = neuron
        self.state_size = 2 * neuron.state_size
        self.input_size = neuron.input_size

    def drive(self, u: Float[Array, " P"]) -> PyTree[Array]:
        return self.neuron.drive(u)

    def driven_vector_field(self, x: Float[Array, " 2D"], drive) -> Float[Array, " 2D"]:
        return to_blocks(self.neuron.driven_vector_field(from_blocks(x), drive))

    def vector_field(self, x: Float[Array, " 2D"], u: Float[Array, " P"]):
        return self.driven_vector_field(x, self.drive(u))


def _setup(getkey, dt=0.5):
    neuron = lt.ComplexLRC(D, P, dtype=jnp.float64, key=getkey())
    x0 = jax.lax.complex(*jax.random.normal(getkey(), (2, D), jnp.float64))
    inputs = jax.random.normal(getkey(), (T, P), jnp.float64)
    return neuron, x0, inputs, dt


def euler_scan(neuron: lt.ComplexLRC, x0, inputs, dt):
    """The reference: explicit Euler in complex arithmetic as a plain `lax.scan`
    over `vector_field` (no solver of the toolkit involved)."""

    def step(x, u):
        x = x + dt * neuron.vector_field(x, u)
        return x, x

    return jax.lax.scan(step, x0, inputs)[1]


def _solve_complex(neuron, x0, inputs, dt):
    return lt.solve(neuron, x0, inputs, solver=lt.ParallelNewton(), dt=dt).states


def _solve_blocks(solver):
    """The block form solved by `solver`, its states mapped back to complex."""

    def solve(neuron, x0, inputs, dt):
        blocks = ComplexAsBlocks(neuron)
        sol = lt.solve(blocks, to_blocks(x0), inputs, solver=solver, dt=dt)
        return from_blocks(sol.states)

    return solve


SOLVES = {
    "complex_parallel": _solve_complex,
    "blocks_parallel": _solve_blocks(lt.ParallelNewton()),
    "blocks_sequential": _solve_blocks(lt.Sequential()),
}


def test_jacobian_is_the_complex_derivative_in_2x2_blocks(getkey):
    """The full Jacobian of the block form is block-diagonal, block $i$ being
    `[[a, -b], [b, a]]` with $a + ib$ the complex derivative of neuron $i$ (the
    JVP along ones that the complex path uses): Cauchy-Riemann, and no coupling
    between blocks."""
    neuron, x0, inputs, _ = _setup(getkey)
    blocks = ComplexAsBlocks(neuron)
    assert lt.ParallelNewton().resolved_method(blocks) == "block"
    jac = jax.jacfwd(lambda x: blocks.vector_field(x, inputs[0]))(to_blocks(x0))
    field = lambda z: neuron.vector_field(z, inputs[0])
    _, dz = jax.jvp(field, (x0,), (jnp.ones_like(x0),))
    a, b = jnp.real(dz), jnp.imag(dz)
    expected = jnp.zeros((2 * D, 2 * D), jnp.float64)
    for i in range(D):
        block = jnp.array([[a[i], -b[i]], [b[i], a[i]]])
        expected = expected.at[2 * i : 2 * i + 2, 2 * i : 2 * i + 2].set(block)
    assert max_abs_diff(jac, expected) <= 1e-12
    assert float(jnp.min(jnp.abs(b))) > 1e-6  # the blocks are not diagonal


def test_same_states(getkey):
    neuron, x0, inputs, dt = _setup(getkey)

    @eqx.filter_jit
    def run(neuron, x0, inputs):
        reference = euler_scan(neuron, x0, inputs, dt)
        return reference, {n: s(neuron, x0, inputs, dt) for n, s in SOLVES.items()}

    reference, states = run(neuron, x0, inputs)
    for name, got in states.items():
        assert got.dtype == jnp.complex128, name
        assert max_abs_diff(got, reference) <= 1e-10, name
    assert max_abs_diff(states["blocks_parallel"], states["complex_parallel"]) <= 1e-10
    # The dynamics are not trivial: the imaginary parts move.
    assert float(jnp.max(jnp.abs(jnp.imag(reference[-1] - x0)))) > 1e-2


@pytest.mark.slow  # ~8 s on a 2-core CPU: compiling two fixed-point adjoints
def test_same_parameter_gradients(getkey):
    """jax.grad of a real loss of the states with respect to every (real) leaf of
    the neuron, through the fixed-point adjoint of `ParallelNewton` on the complex
    neuron and on its block form, against reverse-mode autodiff through the plain
    `lax.scan`."""
    neuron, x0, inputs, dt = _setup(getkey)
    weights = jax.random.normal(getkey(), (T, 2 * D), jnp.float64)

    def loss(solve, neuron):
        states = solve(neuron, x0, inputs, dt)
        return jnp.sum(weights * jnp.tanh(to_blocks(states)))

    @eqx.filter_jit
    def grads(neuron):
        grad = lambda solve: eqx.filter_grad(lambda n: loss(solve, n))(neuron)
        parallel = ("complex_parallel", "blocks_parallel")
        return grad(euler_scan), {n: grad(SOLVES[n]) for n in parallel}

    expected, got = grads(neuron)
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(expected))
    assert scale > 1e-3
    assert float(jnp.max(jnp.abs(expected.w_x_imag))) > 1e-6
    for name, g in got.items():
        assert max_abs_diff(g, expected) <= 1e-9 * scale, name
