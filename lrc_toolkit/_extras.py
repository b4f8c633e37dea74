"""Optional dependencies: the core (neurons, `solve`, the solvers, `compare_views`,
the model and the training loop) needs only JAX, Equinox, Diffrax, Lineax, Optax,
jaxtyping, numpy and tqdm. Data loading and baselines need aeon (the `data` extra),
plots need matplotlib (the `plot` extra); the CLI needs both (the `cli` extra)."""

import importlib
import types


# The extra of pyproject.toml that brings each optional top-level package.
EXTRAS = {"aeon": "data", "matplotlib": "plot"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str, purpose: str, extra: str | None = None) -> types.ModuleType:
    """Import `module` (e.g. `"aeon.datasets"`), or raise a `MissingExtraError` (an `ImportError`) that says
    what needs it and which extra installs it.

    **Arguments:**

    - `module`: the dotted module name.
    - `purpose`: what needs it, e.g. `"loading a UEA data set"`.
    - `extra`: the extra to name; by default the one that brings the module's
      top-level package (`EXTRAS`).
    """
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.partition(".")[0] != top:
            raise  # the package is there but one of its own imports is missing
        extra = extra or EXTRAS.get(top, "all")
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed. Install the "
            f'`{extra}` extra: pip install "lrc_toolkit[{extra}]" (or '
            f'"lrc_toolkit[all]" for every optional dependency).',
            name=top,
        ) from e
