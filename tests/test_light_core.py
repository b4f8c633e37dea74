"""A light core (issue 19): the neurons, `solve`, the solvers, `compare_views`, the
model and the training loop need only jax, equinox, diffrax, lineax, optax,
jaxtyping, numpy and tqdm. aeon (data loading, baselines) and matplotlib (plots) are
extras, and what needs a missing one says which extra to install."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import tomllib

import pytest

from .helpers import slow_after_first


ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL = ("aeon", "matplotlib", "sklearn", "pandas", "numba")
CORE = {"jax", "equinox", "diffrax", "lineax", "optax", "jaxtyping", "numpy", "tqdm"}

# Runs in a fresh interpreter: first the core with every package installed (what it
# loads), then with the optional packages made unimportable (what still works, and
# what each extra's user is told).
SCRIPT = textwrap.dedent(
    """
    import contextlib, importlib.abc, io, json, sys, tempfile

    import jax.numpy as jnp
    import jax.random as jr

    import lrc_toolkit as lt
    import lrc_toolkit.models
    import lrc_toolkit.training

    OPTIONAL = tuple(sys.argv[1:])
    neuron = lt.LRC(3, 2, key=jr.key(0))
    inputs = jnp.ones((8, 2))
    solved = {
        name: bool(lt.solve(neuron, jnp.zeros(3), inputs, solver=solver).converged)
        for name, solver in [
            ("sequential", lt.Sequential()),
            ("parallel", lt.ParallelNewton()),
            ("ode", lt.ODE()),
        ]
    }
    comparison = lt.compare_views(neuron, None, inputs, repeats=1)
    loaded = sorted(
        {m.partition(".")[0] for m in sys.modules} & set(OPTIONAL)
    )

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in OPTIONAL:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Block())
    errors = {}

    def record(key, call):
        try:
            call()
        except ImportError as e:
            errors[key] = [type(e).__name__, str(e)]

    import lrc_toolkit.baselines
    import lrc_toolkit.cli
    import lrc_toolkit.data

    record("load_uea", lambda: lrc_toolkit.data.load_uea("BasicMotions"))
    record("minirocket", lambda: lrc_toolkit.baselines.minirocket(None, None))
    record("plot_comparison", lambda: lt.plot_comparison(comparison))
    for command in ("train", "compare"):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), tempfile.TemporaryDirectory() as d:
            code = lrc_toolkit.cli.main([command, "--out", d + "/run"])
        errors["cli " + command] = [code, stderr.getvalue()]
    print(json.dumps({"solved": solved, "loaded": loaded, "errors": errors}))
    """
)


@pytest.fixture(scope="module")
def report():
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *OPTIONAL],
        cwd=ROOT,
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runtime_dependencies_are_the_core():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
        for d in project["dependencies"]
    }
    assert names == CORE
    extras = project["optional-dependencies"]
    assert any("aeon" in d for d in extras["data"])
    assert any("matplotlib" in d for d in extras["plot"])
    for name in ("cli", "all"):
        assert extras[name] == ["lrc_toolkit[data,plot]"]


@pytest.mark.slow
def test_core_loads_no_optional_package(report):
    assert report["loaded"] == []
    assert report["solved"] == {"sequential": True, "parallel": True, "ode": True}


def test_models_do_not_load_the_training_loop():
    """`import lrc_toolkit.models` loads neither `lrc_toolkit.training` nor tqdm;
    the presets stay importable from it (they are the training package's)."""
    code = textwrap.dedent(
        """
        import json, sys
        import lrc_toolkit.models
        loaded = sorted(
            m for m in sys.modules
            if m.partition(".")[0] == "tqdm" or m.startswith("lrc_toolkit.training")
        )
        from lrc_toolkit.models import Preset, PRESETS
        import lrc_toolkit.training as training
        same = Preset is training.Preset and PRESETS is training.PRESETS
        print(json.dumps({"loaded": loaded, "same": same}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"loaded": [], "same": True}


@pytest.mark.parametrize(
    "what,extra",
    slow_after_first(
        [("load_uea", "data"), ("minirocket", "data"), ("plot_comparison", "plot")],
        unpack=True,
    ),
)
def test_missing_extra_is_named(report, what, extra):
    kind, message = report["errors"][what]
    assert kind == "MissingExtraError"
    assert f'pip install "lrc_toolkit[{extra}]"' in message


@pytest.mark.parametrize("command", ["train", "compare"])
def test_cli_names_its_extra(report, command):
    """The CLI says which extra before any training starts, without a traceback."""
    code, stderr = report["errors"][f"cli {command}"]
    assert code == 2
    assert stderr.startswith(f"lrc-toolkit {command}: error: ")
    assert 'pip install "lrc_toolkit[cli]"' in stderr
    assert "matplotlib" in stderr
    assert "Traceback" not in stderr


def _registry_reachable(python: pathlib.Path, where: pathlib.Path) -> str | None:
    """None if `pip download` fetches a small package, else why not."""
    probe = subprocess.run(
        [str(python), "-m", "pip", "download", "--no-deps", "-q", "-d", str(where)]
        + ["jaxtyping"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return None if probe.returncode == 0 else probe.stderr.strip()[-500:]


@pytest.mark.slow
def test_core_installs_alone_in_a_fresh_venv(tmp_path):
    """`pip install <repo>` into a fresh virtual environment (no system site
    packages: a missing dependency cannot hide), then one LRC neuron solved in the
    parallel view against a plain loop; the optional packages are not there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    why = _registry_reachable(python, tmp_path / "probe")
    if why is not None:
        pytest.skip(f"the package registry is not reachable: {why}")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    check = textwrap.dedent(
        """
        import importlib.util, json, sys
        import jax.numpy as jnp, jax.random as jr
        import lrc_toolkit as lt

        neuron = lt.LRC(4, 2, key=jr.key(0))
        inputs = jnp.sin(jnp.arange(50.0))[:, None] * jnp.ones(2)
        sol = lt.solve(neuron, jnp.zeros(4), inputs, solver=lt.ParallelNewton())
        x, loop = jnp.zeros(4), []
        for u in inputs:
            x = x + neuron.vector_field(x, u)
            loop.append(x)
        print(json.dumps({
            "converged": bool(sol.converged),
            "error": float(jnp.max(jnp.abs(sol.states - jnp.stack(loop)))),
            "present": [m for m in sys.argv[1:] if importlib.util.find_spec(m)],
        }))
        """
    )
    result = subprocess.run(
        [str(python), "-c", check, *OPTIONAL],
        cwd=tmp_path,  # not the repository: the installed package is imported
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["converged"]
    assert report["error"] < 1e-5
    assert report["present"] == []
