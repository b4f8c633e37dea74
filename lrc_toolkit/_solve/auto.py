import jax

from .base import AbstractLiquidSolver
from .newton import ParallelNewton
from .sequential import Sequential


class Auto(AbstractLiquidSolver):
    """The fastest exact evaluation for the backend: [`Sequential()`][lrc_toolkit.Sequential]
    on a CPU (where one Newton iteration already costs about as much as the whole
    `lax.scan`; see `benchmarks/`), [`ParallelNewton()`][lrc_toolkit.ParallelNewton]
    on GPUs and TPUs. Both compute the same states (the sequential one exactly,
    Newton to its tolerance) and differentiate them at the fixed point."""

    def choose(self) -> AbstractLiquidSolver:
        """The solver picked on JAX's default backend."""
        return Sequential() if jax.default_backend() == "cpu" else ParallelNewton()

    def run(self, neuron, x0, inputs, dt, ts, discretisation, init):
        return self.choose().run(neuron, x0, inputs, dt, ts, discretisation, init)
