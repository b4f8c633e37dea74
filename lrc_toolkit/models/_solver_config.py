"""Solvers and discretisations as JSON-serialisable dicts, so that a model's
configuration (and a checkpoint's) records how its liquid layers are solved."""

from typing import Any

import diffrax

from .._discretise import (
    AbstractDiscretisation,
    DiffraxStep,
    Euler,
    ImplicitEuler,
    SemiImplicitEuler,
)
from .._neurons.cfc import ClosedForm
from .._solve.auto import Auto
from .._solve.base import AbstractLiquidSolver
from .._solve.linear_scan import AssociativeScan, SequentialScan
from .._solve.newton import ParallelNewton
from .._solve.ode import ODE
from .._solve.sequential import Sequential


# Diffrax solvers known by name (constructed without arguments).
_DIFFRAX = {
    name: getattr(diffrax, name)
    for name in ("Euler", "Heun", "Midpoint", "Ralston", "Bosh3", "Tsit5", "Dopri5")
}
_RECURRENCES = {"AssociativeScan": AssociativeScan, "SequentialScan": SequentialScan}


def _diffrax_name(solver) -> str | None:
    for name, cls in _DIFFRAX.items():
        if type(solver) is cls and solver == cls():
            return name
    return None


def discretisation_to_config(d: AbstractDiscretisation) -> dict[str, Any] | None:
    """A dict for `d`, or `None` if it cannot be recorded (e.g. a user-defined one)."""
    if type(d) is Euler:
        return {"type": "Euler"}
    if type(d) is ClosedForm:
        return {"type": "ClosedForm"}
    if type(d) is SemiImplicitEuler:
        return {"type": "SemiImplicitEuler", "substeps": d.substeps}
    if type(d) is ImplicitEuler:
        return {
            "type": "ImplicitEuler",
            "rtol": d.rtol,
            "atol": d.atol,
            "max_steps": d.max_steps,
        }
    if type(d) is DiffraxStep and _diffrax_name(d.solver) is not None:
        return {"type": "DiffraxStep", "solver": _diffrax_name(d.solver)}
    return None


def solver_to_config(s: AbstractLiquidSolver) -> dict[str, Any] | None:
    """A dict for `s`, or `None` if it cannot be recorded (a sharded recurrence, a
    custom Diffrax solver or controller, a user-defined solver)."""
    if type(s) is Auto:
        return {"type": "Auto"}
    if type(s) is Sequential:
        return {
            "type": "Sequential",
            "autodiff": s.autodiff,
            "check_stability": s.check_stability,
        }
    if type(s) is ParallelNewton:
        fallback = None
        if s.fallback is not None:
            fallback = solver_to_config(s.fallback)
            if fallback is None:
                return None
        recurrence = None
        if s.recurrence is not None:
            recurrence = type(s.recurrence).__name__
            if recurrence not in _RECURRENCES:
                return None
        return {
            "type": "ParallelNewton",
            "method": s.method,
            "rtol": s.rtol,
            "atol": s.atol,
            "max_iters": s.max_iters,
            "damping": s.damping,
            "fallback": fallback,
            "recurrence": recurrence,
        }
    if (
        type(s) is ODE
        and s.stepsize_controller is None
        and _diffrax_name(s.solver) is not None
        and s.adjoint == ODE().adjoint
    ):
        return {
            "type": "ODE",
            "solver": _diffrax_name(s.solver),
            "dt0": s.dt0,
            "interpolation": s.interpolation,
            "max_steps": s.max_steps,
        }
    return None


def _unknown(kind, config):
    raise ValueError(f"Unknown {kind} configuration {config!r}.")


def discretisation_from_config(config: dict[str, Any]) -> AbstractDiscretisation:
    """The inverse of `discretisation_to_config`."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind == "Euler":
        return Euler()
    if kind == "ClosedForm":
        return ClosedForm()
    if kind == "SemiImplicitEuler":
        return SemiImplicitEuler(**config)
    if kind == "ImplicitEuler":
        return ImplicitEuler(**config)
    if kind == "DiffraxStep" and config.get("solver") in _DIFFRAX:
        return DiffraxStep(_DIFFRAX[config["solver"]]())
    _unknown("discretisation", config)


def solver_from_config(config: dict[str, Any]) -> AbstractLiquidSolver:
    """The inverse of `solver_to_config`."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind == "Auto":
        return Auto()
    if kind == "Sequential":
        return Sequential(**config)
    if kind == "ParallelNewton":
        if config.get("fallback") is not None:
            config["fallback"] = solver_from_config(config["fallback"])
        if config.get("recurrence") is not None:
            config["recurrence"] = _RECURRENCES[config["recurrence"]]()
        return ParallelNewton(**config)
    if kind == "ODE" and config.get("solver") in _DIFFRAX:
        config["solver"] = _DIFFRAX[config["solver"]]()
        return ODE(**config)
    _unknown("solver", config)
