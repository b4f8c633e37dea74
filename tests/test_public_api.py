"""The public API has one shape (issue 11): one argument order `neuron, x0, inputs`,
algorithms as Equinox modules, no `**options` except the two shorthands."""

import importlib
import inspect
import pkgutil

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

import lrc_toolkit as lt


SHORTHANDS = {"lrc_toolkit.solve_sequential", "lrc_toolkit.solve_parallel"}
# `**kwargs` that are not solver options: the loader's file-format options.
OTHER_KWARGS = {"lrc_toolkit.data.load_file"}


def public_modules():
    names = ["lrc_toolkit"] + [
        info.name
        for info in pkgutil.walk_packages(lt.__path__, "lrc_toolkit.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    ]
    return [importlib.import_module(name) for name in names]


def public_callables():
    """`(qualified name, callable)` for every public function and class of every
    public module (re-exports counted once, under the first module)."""
    seen, out = set(), []
    for module in public_modules():
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or id(obj) in seen:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("lrc_toolkit"):
                continue
            seen.add(id(obj))
            out.append((f"{module.__name__}.{name}", obj))
    return out


def takes_a_neuron():
    out = []
    for name, obj in public_callables():
        if inspect.isfunction(obj):
            params = list(inspect.signature(obj).parameters)
            if params and params[0] == "neuron":
                out.append((name, obj))
    return out


def test_the_functions_taking_a_neuron_are_found():
    names = {name for name, _ in takes_a_neuron()}
    assert {
        "lrc_toolkit.solve",
        "lrc_toolkit.solve_sequential",
        "lrc_toolkit.solve_parallel",
        "lrc_toolkit.compare_views",
        "lrc_toolkit.transition_factors",
        "lrc_toolkit.check_jacobian_structure",
    } <= names


@pytest.mark.parametrize(
    "name,fn", takes_a_neuron(), ids=[name for name, _ in takes_a_neuron()]
)
def test_one_argument_order(name, fn):
    """Positional parameters: `neuron, x0, inputs` (a prefix of it for a function
    that needs less, e.g. `check_jacobian_structure(neuron)`); everything else is
    keyword-only."""
    positional = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    common = ["neuron", "x0", "inputs"]
    assert positional[:3] == common[: len(positional)], name
    if name == "lrc_toolkit.transition_factors":
        # the analysed states follow the common three
        assert positional == common + ["states"]
    else:
        assert len(positional) in (1, 3), name


@pytest.mark.parametrize("name", ["solve", "compare_views", "transition_factors"])
def test_time_is_a_keyword(name):
    params = inspect.signature(getattr(lt, name)).parameters
    for key in ("dt", "ts", "discretisation", "solver", "parallel", "ode"):
        if key in params:
            assert params[key].kind == inspect.Parameter.KEYWORD_ONLY, key


def test_no_solver_options_as_kwargs():
    found = set()
    for name, obj in public_callables():
        fn = obj.__init__ if inspect.isclass(obj) else obj
        if not getattr(fn, "__module__", "").startswith("lrc_toolkit"):
            continue  # inherited, e.g. an Exception's or an enumeration's
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        if any(p.kind == p.VAR_KEYWORD for p in params):
            found.add(name)
    assert found <= SHORTHANDS | OTHER_KWARGS, found - SHORTHANDS - OTHER_KWARGS
    assert SHORTHANDS <= found


def test_shorthands_take_only_solve_keywords(getkey):
    neuron = lt.LRC(3, 2, key=getkey())
    x0, u = jnp.zeros(3), jr.normal(getkey(), (5, 2))
    for shorthand, solver in (
        (lt.solve_sequential, lt.Sequential()),
        (lt.solve_parallel, lt.ParallelNewton()),
    ):
        got = shorthand(neuron, x0, u, dt=0.5).states
        expected = lt.solve(neuron, x0, u, solver=solver, dt=0.5).states
        assert jnp.array_equal(got, expected)
        with pytest.raises(TypeError, match="unexpected keyword"):
            shorthand(neuron, x0, u, method="dense")
        with pytest.raises(TypeError, match="solver"):
            shorthand(neuron, x0, u, solver=lt.ODE())


ALGORITHMS = [
    lt.Sequential(),
    lt.Sequential(autodiff=True),
    lt.ParallelNewton(),
    lt.ParallelNewton(method="quasi", fallback=lt.Sequential(), damping=1.0),
    lt.ODE(),
    lt.ODE(diffrax.Euler(), interpolation="linear"),
    lt.Auto(),
    lt.Euler(),
    lt.SemiImplicitEuler(),
    lt.ImplicitEuler(),
    lt.DiffraxStep(diffrax.Heun()),
    lt.AssociativeScan(),
    lt.SequentialScan(),
]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: type(a).__name__)
def test_algorithms_are_equinox_modules(algorithm):
    assert isinstance(algorithm, eqx.Module)
    abstract = {
        lt.Sequential: lt.AbstractLiquidSolver,
        lt.ParallelNewton: lt.AbstractLiquidSolver,
        lt.ODE: lt.AbstractLiquidSolver,
        lt.Auto: lt.AbstractLiquidSolver,
        lt.AssociativeScan: lt.AbstractRecurrence,
        lt.SequentialScan: lt.AbstractRecurrence,
    }.get(type(algorithm), lt.AbstractDiscretisation)
    assert isinstance(algorithm, abstract)
    # Modules hold their options: equal options, equal (and hashable-static) modules,
    # so that `jit` does not recompile for a new but equal solver.
    assert eqx.tree_equal(algorithm, type(algorithm)(**_fields(algorithm)))


def _fields(module):
    import dataclasses

    return {
        f.name: getattr(module, f.name) for f in dataclasses.fields(module) if f.init
    }


def test_every_exported_solver_and_discretisation_is_a_module():
    """Every public subclass of the three abstract bases (including those that need
    arguments, e.g. `ShardedScan(mesh)`) is an Equinox module."""
    bases = (lt.AbstractLiquidSolver, lt.AbstractDiscretisation, lt.AbstractRecurrence)
    exported = {
        obj
        for _, obj in public_callables()
        if inspect.isclass(obj) and issubclass(obj, bases) and obj not in bases
    }
    assert {type(a) for a in ALGORITHMS} | {lt.ShardedScan} <= exported
    for cls in exported:
        assert issubclass(cls, eqx.Module), cls


def test_no_stray_modules_in_the_namespace():
    """Only the package's own subpackages are modules in `lrc_toolkit` (no
    `lt.importlib`)."""
    import types

    stray = [
        name
        for name in dir(lt)
        if not name.startswith("_")
        and isinstance(getattr(lt, name), types.ModuleType)
        and not getattr(lt, name).__name__.startswith("lrc_toolkit.")
    ]
    # `jaxtyping` is put there by the test run's type-checking import hook.
    assert stray in ([], ["jaxtyping"])
