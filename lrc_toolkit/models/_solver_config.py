"""Solvers and discretisations as JSON-serialisable dicts, so that a model's
configuration (and a checkpoint's) records how its liquid layers are solved.

One registry, one rule. The registry is every solver, discretisation and
recurrence that `lrc_toolkit` exports, and every Diffrax module (solvers,
step-size controllers, adjoints) as `"diffrax.<Name>"`. A module is written as
`{"type": name, field: value, ...}` with every field of its dataclass: a number,
string, bool or `None` as itself, a nested module (`fallback=Sequential()`,
`ODE(diffrax.Tsit5())`) as its own dict. A field that cannot be written so may be
left out only when it holds its default (e.g. the norm function of a
`diffrax.PIDController`). A module is recorded only if reading its dict back
rebuilds an equal module, so that nothing is lost silently."""

import dataclasses
import functools
import types
import typing
from typing import Any

import diffrax
import equinox as eqx

from .._discretise import AbstractDiscretisation
from .._solve.base import AbstractLiquidSolver
from .._solve.linear_scan import AbstractRecurrence


_KINDS = (AbstractLiquidSolver, AbstractDiscretisation, AbstractRecurrence)
_OMIT = object()  # a field left out of the dict (it holds its default)


@functools.cache
def registry() -> dict[str, type]:
    """Every class a config can name, by the name it is written as."""
    import lrc_toolkit

    def concrete(namespace, base):
        return {
            name: cls
            for name, cls in vars(namespace).items()
            if isinstance(cls, type)
            and issubclass(cls, base)
            and not name.startswith(("_", "Abstract"))
        }

    external = concrete(diffrax, eqx.Module)
    own = concrete(lrc_toolkit, _KINDS)
    return own | {f"diffrax.{name}": cls for name, cls in external.items()}


def _name(cls) -> str | None:
    return next((n for n, c in registry().items() if c is cls), None)


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _OMIT  # no default


def _same(a, b) -> bool:
    return type(a) is type(b) and eqx.tree_equal(a, b) is True


def _encode(value, field: dataclasses.Field):
    """`value` as JSON; `_OMIT` if it cannot be written but holds the field's
    default; else raises `_Unrecordable`."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, eqx.Module):
        config = to_config(value)
        if config is not None:
            return config
    if _same(value, _default(field)):
        return _OMIT
    raise _Unrecordable


class _Unrecordable(Exception):
    pass


def to_config(module: eqx.Module) -> dict[str, Any] | None:
    """A dict for `module`, or `None` if it cannot be recorded (a user-defined class,
    a field holding an array, a mesh or a custom function)."""
    name = _name(type(module))
    if name is None:
        return None
    config = {"type": name}
    for field in dataclasses.fields(module):
        if not field.init:
            continue
        try:
            value = _encode(getattr(module, field.name), field)
        except _Unrecordable:
            return None
        if value is not _OMIT:
            config[field.name] = value
    try:
        rebuilt = from_config(config)
    except (ValueError, TypeError):
        return None
    return config if _same(rebuilt, module) else None


def _module_types(annotation) -> tuple[type, ...]:
    """The Module classes named in a field's annotation (`X | None` -> `(X,)`)."""
    if isinstance(annotation, type):
        return (annotation,) if issubclass(annotation, eqx.Module) else ()
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return sum((_module_types(a) for a in typing.get_args(annotation)), ())
    return ()


def _decode(value, field: dataclasses.Field):
    if isinstance(value, dict):
        return from_config(value)
    expected = _module_types(field.type)
    if isinstance(value, str) and expected:
        # Written before 0.3: a class name alone ("AssociativeScan", "Tsit5").
        for name in (value, f"diffrax.{value}"):
            cls = registry().get(name)
            if cls is not None and issubclass(cls, expected):
                return cls()
        raise ValueError(f"Unknown `{field.name}` {value!r} in a configuration.")
    return value


def from_config(config: dict[str, Any], kind: type = eqx.Module) -> eqx.Module:
    """The inverse of `to_config`: a fresh module, which must be a `kind`."""
    config = dict(config)
    name = config.pop("type", None)
    cls = registry().get(name)
    if cls is None or not issubclass(cls, kind):
        known = [n for n, c in registry().items() if issubclass(c, kind)]
        raise ValueError(
            f"Unknown {kind.__name__} configuration {{'type': {name!r}, ...}}; known: "
            f"{', '.join(n for n in known if not n.startswith('diffrax.'))}"
            + (
                ", or a Diffrax module as 'diffrax.<Name>'."
                if kind is eqx.Module
                else "."
            )
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ValueError(f"{name} has no field(s) {unknown} (in a configuration).")
    return cls(**{k: _decode(v, fields[k]) for k, v in config.items()})


def solver_to_config(solver: AbstractLiquidSolver) -> dict[str, Any] | None:
    """A dict for `solver`, or `None` if it cannot be recorded."""
    return to_config(solver)


def discretisation_to_config(d: AbstractDiscretisation) -> dict[str, Any] | None:
    """A dict for `d`, or `None` if it cannot be recorded."""
    return to_config(d)


def solver_from_config(config: dict[str, Any]) -> AbstractLiquidSolver:
    """The inverse of `solver_to_config`."""
    return from_config(config, AbstractLiquidSolver)


def discretisation_from_config(config: dict[str, Any]) -> AbstractDiscretisation:
    """The inverse of `discretisation_to_config`."""
    return from_config(config, AbstractDiscretisation)


def ode_solvers() -> tuple[str, ...]:
    """The Diffrax ODE solvers that need no arguments, by their Diffrax names."""
    names = []
    for name, cls in registry().items():
        if name.startswith("diffrax.") and issubclass(cls, diffrax.AbstractSolver):
            if getattr(cls, "term_structure", None) is diffrax.AbstractTerm:
                try:
                    cls()
                except TypeError:
                    continue
                names.append(name.removeprefix("diffrax."))
    return tuple(names)
