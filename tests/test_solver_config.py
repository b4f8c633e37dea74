"""Solvers and discretisations written as JSON and read back: every registered
class, with every field off its default."""

import dataclasses
import json
import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM
from lrc_toolkit.models._solver_config import (
    from_config,
    ode_solvers,
    registry,
    solver_from_config,
    to_config,
)


# One instance per registered class, each field off its default.
EXAMPLES = {
    lt.ParallelNewton: lt.ParallelNewton(
        method="quasi",
        rtol=1e-7,
        atol=1e-8,
        max_iters=9,
        damping=0.5,
        fallback=lt.Sequential(autodiff=True),
        recurrence=lt.SequentialScan(),
        chunk_size=7,
    ),
    lt.Sequential: lt.Sequential(autodiff=True, check_stability=False),
    lt.Auto: lt.Auto(),
    lt.ODE: lt.ODE(
        diffrax.Kvaerno5(root_find_max_steps=5),
        stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-6),
        dt0=0.05,
        interpolation="cubic",
        max_steps=100,
        adjoint=diffrax.DirectAdjoint(),
    ),
    lt.AssociativeScan: lt.AssociativeScan(),
    lt.SequentialScan: lt.SequentialScan(),
    lt.Euler: lt.Euler(),
    lt.ClosedForm: lt.ClosedForm(),
    lt.SemiImplicitEuler: lt.SemiImplicitEuler(substeps=3),
    lt.ImplicitEuler: lt.ImplicitEuler(rtol=1e-9, atol=1e-10, max_steps=5),
    lt.DiffraxStep: lt.DiffraxStep(diffrax.Heun(scan_kind="bounded")),
}
# Registered, but holding what JSON cannot (a device mesh).
UNRECORDABLE = {lt.ShardedScan}


def _own_classes():
    return {c for n, c in registry().items() if not n.startswith("diffrax.")}


def test_every_class_has_an_example():
    assert _own_classes() == set(EXAMPLES) | UNRECORDABLE
    public = {
        v
        for v in vars(lt).values()
        if isinstance(v, type)
        and issubclass(v, (lt.AbstractLiquidSolver, lt.AbstractDiscretisation))
        and not v.__name__.startswith("Abstract")
    }
    assert public <= _own_classes()


@pytest.mark.parametrize("cls", EXAMPLES, ids=lambda c: c.__name__)
def test_examples_are_off_default(cls):
    example = EXAMPLES[cls]
    for field in dataclasses.fields(cls):
        if field.default is dataclasses.MISSING:
            continue
        assert not eqx.tree_equal(getattr(example, field.name), field.default), (
            field.name
        )


@pytest.mark.parametrize("cls", EXAMPLES, ids=lambda c: c.__name__)
def test_round_trip(cls):
    example = EXAMPLES[cls]
    config = to_config(example)
    assert config is not None
    written = json.loads(json.dumps(config))
    assert written == config
    rebuilt = from_config(written)
    assert type(rebuilt) is cls
    assert eqx.tree_equal(rebuilt, example) is True
    assert to_config(rebuilt) == config


def test_model_config_keeps_chunk_size(getkey):
    """The reported defect: `chunk_size` was dropped by `config`."""
    solver = lt.ParallelNewton(chunk_size=7, damping=math.inf)
    model = LrcSSM(3, 2, hidden_size=4, state_size=4, num_blocks=1, solver=solver,
                   dtype=jnp.float64, key=getkey())  # fmt: skip
    config = json.loads(json.dumps(model.config))
    rebuilt = LrcSSM.from_config(config, key=getkey())
    assert rebuilt.solver == solver
    assert rebuilt.solver.chunk_size == 7


def test_reads_configs_written_before():
    """Nested modules were once written as class names alone."""
    old_newton = {
        "type": "ParallelNewton",
        "method": "quasi",
        "rtol": None,
        "atol": None,
        "max_iters": 5,
        "damping": None,
        "fallback": {"type": "Sequential", "autodiff": False, "check_stability": True},
        "recurrence": "AssociativeScan",
    }
    assert solver_from_config(old_newton) == lt.ParallelNewton(
        method="quasi", max_iters=5, fallback=lt.Sequential(),
        recurrence=lt.AssociativeScan(),
    )  # fmt: skip
    old_ode = {"type": "ODE", "solver": "Heun", "dt0": 0.25, "interpolation": "linear",
               "max_steps": 4096}  # fmt: skip
    assert solver_from_config(old_ode) == lt.ODE(
        diffrax.Heun(), dt0=0.25, interpolation="linear"
    )
    assert from_config({"type": "DiffraxStep", "solver": "Tsit5"}) == lt.DiffraxStep(
        diffrax.Tsit5()
    )


class _Mine(lt.AbstractLiquidSolver):
    def run(self, neuron, x0, inputs, dt, ts, discretisation, init):
        raise NotImplementedError


def test_unrecordable():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("time",))
    assert to_config(lt.ParallelNewton(recurrence=lt.ShardedScan(mesh))) is None
    assert to_config(lt.ParallelNewton(fallback=_Mine())) is None
    step_to = diffrax.StepTo(jnp.linspace(0.0, 1.0, 3))  # an array
    assert to_config(lt.ODE(stepsize_controller=step_to)) is None
    custom_norm = diffrax.PIDController(rtol=1e-3, atol=1e-3, norm=jnp.linalg.norm)
    assert to_config(lt.ODE(stepsize_controller=custom_norm)) is None


def test_unknown_configurations():
    with pytest.raises(ValueError, match="Unknown AbstractLiquidSolver .*'Newton'"):
        solver_from_config({"type": "Newton"})
    with pytest.raises(ValueError, match="Unknown AbstractLiquidSolver .*'Euler'"):
        solver_from_config({"type": "Euler"})  # a discretisation
    with pytest.raises(ValueError, match=r"Sequential has no field\(s\) \['tol'\]"):
        solver_from_config({"type": "Sequential", "tol": 1})


def test_ode_solvers_are_diffrax_ode_solvers():
    names = ode_solvers()
    assert {"Euler", "Heun", "Tsit5", "Dopri5", "Kvaerno5"} <= set(names)
    assert "EulerHeun" not in names  # an SDE solver
    for name in names:
        lt.ODE(getattr(diffrax, name)())
