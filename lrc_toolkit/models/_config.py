"""`LrcSSM.config` and `LrcSSM.from_config`: the constructor's arguments as a
JSON-serialisable dict and back.

One table: the constructor's signature. Every argument but `neurons` and `key` is
recorded, read off the model's attribute of the same name unless `_CODECS` says
how to write and read it; so a new constructor argument is recorded (and an
unknown key refused) without a second list to keep."""

import inspect
import json
from collections.abc import Mapping
from typing import Any

import equinox as eqx
from jaxtyping import PRNGKeyArray

from .._neurons.registry import NeuronFactory
from ._solver_config import (
    discretisation_from_config,
    discretisation_to_config,
    solver_from_config,
    solver_to_config,
)


# Constructor arguments that are not recorded: extra code and randomness.
_NOT_RECORDED = ("self", "neurons", "key")

# name: (read it off a model as JSON (None: cannot be recorded), JSON -> argument)
_CODECS = {
    "neuron": (lambda m: m.neuron_name, lambda c: c),
    "solver": (lambda m: solver_to_config(m.solver), solver_from_config),
    "discretisation": (
        lambda m: discretisation_to_config(m.discretisation),
        discretisation_from_config,
    ),
    "dtype": (lambda m: m.dtype_name, lambda c: c),
}


def _recorded(cls) -> tuple[str, ...]:
    """The names a config of `cls` holds, in the constructor's order."""
    parameters = inspect.signature(cls.__init__).parameters
    return tuple(name for name in parameters if name not in _NOT_RECORDED)


def model_config(model) -> dict[str, Any] | None:
    """`model`'s constructor arguments as a dict, or `None` if one of them cannot be
    recorded (a neuron given as a factory, a custom solver or discretisation)."""
    config = {}
    for name in _recorded(type(model)):
        if name in _CODECS:
            value = _CODECS[name][0](model)
            if value is None:
                return None
        else:
            value = getattr(model, name)
        config[name] = value
    # As it reads back from JSON (tuples become lists), so that a config compares
    # equal to the one a checkpoint stored.
    return json.loads(json.dumps(config))


def model_from_config(cls, config: dict[str, Any], *, key, neurons):
    """The inverse of `model_config`: a fresh model of class `cls`."""
    recorded = _recorded(cls)
    unknown = set(config) - set(recorded)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} config keys {sorted(unknown)}.")
    arguments = {
        name: _CODECS[name][1](value) if name in _CODECS else value
        for name, value in config.items()
    }
    return cls(**arguments, neurons=neurons, key=key)


class Configurable(eqx.Module):
    """`config` and `from_config` (a base class of the model)."""

    @property
    def config(self) -> dict[str, Any] | None:
        """The constructor arguments as a JSON-serialisable dict (the solver and the
        discretisation included), from which
        [`LrcSSM.from_config`][lrc_toolkit.models.LrcSSM.from_config] rebuilds the
        model's structure; `None` if the neuron was given as a factory or the solver
        or discretisation cannot be recorded (a custom one, a sharded recurrence;
        then pass a template model to
        [`load_checkpoint`][lrc_toolkit.training.load_checkpoint])."""
        return model_config(self)

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        *,
        key: PRNGKeyArray,
        neurons: Mapping[str, NeuronFactory] | None = None,
    ) -> "Configurable":
        """Build a model from [`LrcSSM.config`][lrc_toolkit.models.LrcSSM.config].

        **Arguments:**

        - `config`: the dict.
        - `key`: a `jax.random.key` for the (fresh) parameters.
        - `neurons`: the extra named neurons the model was built with (a config
            never imports code by itself).

        **Returns:**

        An `LrcSSM`.
        """
        return model_from_config(cls, config, key=key, neurons=neurons)
