import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    """Whether two PyTrees have the same structure and allclose array leaves."""
    return eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol)


def max_abs_diff(x, y) -> float:
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), x, y))
    return float(max(leaves)) if leaves else 0.0


def python_loop(neuron, x0, inputs, dt=1.0):
    """The explicit-Euler recurrence as a plain Python loop over `vector_field`: the
    independent reference for every solver."""
    f = eqx.filter_jit(lambda x, u: neuron.vector_field(x, u))
    dts = np.broadcast_to(np.asarray(dt), (inputs.shape[0],))
    x, out = x0, []
    for u, h in zip(inputs, dts):
        x = x + jnp.asarray(h, x.dtype) * f(x, u)
        out.append(x)
    return jnp.stack(out)
