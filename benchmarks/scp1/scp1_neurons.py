"""Neuron factories for `lrc-toolkit train --neuron scp1_neurons:...` in the SCP1
sweep (`benchmarks/scp1/sweep.sh` puts this folder on `PYTHONPATH`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import lrc_toolkit as lt


def lrc_biophysical(state_size, input_size, *, dtype=None, key):
    """The LRC with its biophysical initialisation instead of the reference's
    uniform ±1/√D."""
    return lt.LRC(state_size, input_size, init="biophysical", dtype=dtype, key=key)


class GatedLeaky(lt.AbstractLiquidNeuron):
    """The custom-neuron guide's example: a gated leak and a tanh drive."""

    state_size: int = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    jacobian_structure = "diagonal"
    log_tau: jax.Array
    W_gate: jax.Array
    W_in: jax.Array
    w_self: jax.Array
    bias: jax.Array

    def __init__(self, state_size, input_size, *, dtype=None, key):
        k1, k2, k3, k4 = jr.split(key, 4)
        scale = 1 / np.sqrt(input_size)
        self.log_tau = jr.uniform(k1, (state_size,), minval=0.0, maxval=1.0)
        self.W_gate = scale * jr.normal(k2, (state_size, input_size))
        self.W_in = scale * jr.normal(k3, (state_size, input_size))
        self.w_self = jr.uniform(k4, (state_size,), minval=-0.5, maxval=0.0)
        self.bias = jnp.zeros(state_size)
        self.state_size, self.input_size = state_size, input_size

    def vector_field(self, x, u):
        leak = jnp.exp(-self.log_tau) * jax.nn.sigmoid(self.W_gate @ u)
        return -leak * x + jnp.tanh(self.W_in @ u + self.w_self * x + self.bias)


def gated_leaky(state_size, input_size, *, dtype=None, key):
    """The custom-neuron guide's `GatedLeaky` (its state follows its input
    strongly from the start; see `benchmarks/slow_start/run.py`)."""
    return GatedLeaky(state_size, input_size, key=key)
