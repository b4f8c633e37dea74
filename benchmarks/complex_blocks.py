"""ComplexLRC solved in parallel two ways: in complex arithmetic (diagonal Newton, one
complex factor per neuron) and as 2x2 real blocks (block Newton on the state
`[Re x_0, Im x_0, Re x_1, ...]`, blocks from 2 JVPs).

    python benchmarks/complex_blocks.py [--quick] [--T 4096] [--D 64] [--assoc]

Both are `ParallelNewton()` with its default recurrence for the backend (and, with
`--assoc`, also with `AssociativeScan()`), float32, a batch of one sequence, zero
initial state; every run's states are checked against the complex `lax.scan`.
Prints the median times and the ratio block / complex measured in this run and
writes `results/complex_blocks.csv`.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import (
    fmt,
    machine,
    max_diff,
    median_ms,
    parser,
    time_interleaved,
    write_csv,
)

import lrc_toolkit as lt


def to_blocks(z):
    """`[Re z_0, Im z_0, Re z_1, Im z_1, ...]` along the last axis."""
    pairs = jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)
    return pairs.reshape(z.shape[:-1] + (2 * z.shape[-1],))


def from_blocks(x):
    return jax.lax.complex(x[..., 0::2], x[..., 1::2])


class ComplexAsBlocks(lt.AbstractLiquidNeuron):
    """A `ComplexLRC` on a real state of 2x2 blocks (as in
    tests/test_complex_blocks.py)."""

    neuron: lt.ComplexLRC
    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure: ClassVar[str] = "block"
    block_size: ClassVar[int] = 2

    def __init__(self, neuron):
        self.neuron = neuron
        self.state_size = 2 * neuron.state_size
        self.input_size = neuron.input_size

    def drive(self, u):
        return self.neuron.drive(u)

    def driven_vector_field(self, x, drive):
        return to_blocks(self.neuron.driven_vector_field(from_blocks(x), drive))

    def vector_field(self, x, u):
        return self.driven_vector_field(x, self.drive(u))


def contenders(neuron, x0, inputs, recurrence):
    """`{name: jitted () -> (complex states, iterations)}`."""
    newton = lt.ParallelNewton(recurrence=recurrence)
    blocks = ComplexAsBlocks(neuron)

    @jax.jit
    def complex_path(neuron, x0, inputs):
        sol = lt.solve(neuron, x0, inputs, solver=newton, throw=False)
        return sol.states, sol.iterations

    @jax.jit
    def block_path(blocks, x0, inputs):
        sol = lt.solve(blocks, to_blocks(x0), inputs, solver=newton, throw=False)
        return from_blocks(sol.states), sol.iterations

    return {
        "complex": lambda: complex_path(neuron, x0, inputs),
        "blocks": lambda: block_path(blocks, x0, inputs),
    }


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--T", type=int, help="time steps (default 4096; --quick: 512)")
    p.add_argument("--D", type=int, help="complex neurons (default 64; --quick: 16)")
    p.add_argument("--assoc", action="store_true", help="also AssociativeScan()")
    args = p.parse_args(argv)
    T = args.T or (512 if args.quick else 4096)
    D = args.D or (16 if args.quick else 64)
    print(machine())
    k1, k2 = jr.split(jr.key(0))
    neuron = lt.ComplexLRC(D, D, dtype=jnp.float32, key=k1)
    inputs = jr.normal(k2, (T, D), jnp.float32)
    x0 = jnp.zeros(D, neuron.state_dtype)
    scan = lt.Sequential(check_stability=False)
    reference = jax.jit(lambda n, x, u: lt.solve(n, x, u, solver=scan).states)
    reference = reference(neuron, x0, inputs)
    errors, iterations = {}, {}

    def check(name, out):
        states, k = out
        errors[name], iterations[name] = max_diff(states, reference), int(k)
        assert errors[name] <= 1e-3, (name, errors[name])

    recurrences = {"default": None}
    if args.assoc:
        recurrences["assoc"] = lt.AssociativeScan()
    rows = []
    for label, recurrence in recurrences.items():
        fs = contenders(neuron, x0, inputs, recurrence)
        times = time_interleaved(fs, check, args.repeats)
        ms = {name: median_ms(ts) for name, ts in times.items()}
        for name in fs:
            rows.append(
                dict(
                    recurrence=label,
                    path=name,
                    T=T,
                    D=D,
                    time_ms=ms[name],
                    ratio_to_complex=ms[name] / ms["complex"],
                    iterations=iterations[name],
                    max_abs_err=errors[name],
                )
            )
    print(fmt(rows, list(rows[0])))
    for label in recurrences:
        ratio = next(
            r["ratio_to_complex"]
            for r in rows
            if r["recurrence"] == label and r["path"] == "blocks"
        )
        faster = "blocks" if ratio < 1 else "complex"
        print(f"{label} recurrence: blocks / complex = {ratio:.3g} ({faster} faster)")
    write_csv(args.out / "complex_blocks.csv", rows)
    return rows


if __name__ == "__main__":
    main()
