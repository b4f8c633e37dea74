import os
import pathlib
import shutil


# The suite is compile-bound: XLA's compile time is about 80 % of it on a CPU
# (tests/test_models.py and tests/test_gated.py: 305 of 374 s), while each
# compiled program runs for milliseconds. LLVM's optimisation level 0 cuts the
# compile time by about a fifth (tests/test_gated.py: 88 -> 69 s) and changes no
# result beyond rounding (no fast-math). Set before JAX starts its backend, so the
# subprocesses (notebook kernels, the CLI, the sharding worker) inherit it; a
# user's own `XLA_FLAGS` setting of the level wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

# JAX's persistent compilation cache, on for every run and kept across runs in
# `.jax_cache/` at the repository root (git-ignored; `LRC_TOOLKIT_TEST_CACHE=DIR`
# puts it elsewhere), inherited by the xdist workers and the subprocesses (notebook
# kernels, the CLI). Within a run, the module-end `jax.clear_caches()` below drops
# the compiled programs, which later modules compile again (the same solves at the
# same shapes) and read back instead (fast tier, 2 workers: 398 and 425 s without,
# 324 and 353 s with a cold cache); across runs, a rerun compiles only the programs
# that changed (fast tier: 334-342 s from a fresh clone, 284 s when rerun). The
# cache's key is the program, the flags and the JAX version, so an entry is never
# stale. Past `MAX_CACHE_BYTES` the first process of a run empties it. (Not JAX's
# own `jax_compilation_cache_max_size`: its eviction lists the whole directory at
# every write, under a lock; with it a fresh-clone `.ci/run` took 1505 s, with an
# experiment on one core for part of it, against 886-906 s before.)
MAX_CACHE_BYTES = 1 << 30
os.environ.setdefault(
    "LRC_TOOLKIT_TEST_CACHE", str(pathlib.Path(__file__).parents[1] / ".jax_cache")
)
_cache = pathlib.Path(os.environ["LRC_TOOLKIT_TEST_CACHE"])
if "PYTEST_XDIST_WORKER" not in os.environ and _cache.is_dir():
    if sum(p.stat().st_size for p in _cache.iterdir()) > MAX_CACHE_BYTES:
        shutil.rmtree(_cache, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["LRC_TOOLKIT_TEST_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402


jax.config.update("jax_enable_x64", True)
# (Also set here: a pytest plugin may have imported JAX before this file.)
# The values come from the environment set above, so a user's own JAX setting wins
# here as it does in the subprocesses.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes",
    int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def getkey():
    """A fresh `jax.random.key` at each call, deterministic per test."""
    keys = iter(jax.random.split(jax.random.key(5678), 10_000))
    return lambda: next(keys)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module: one long process
    otherwise accumulates thousands of executables (gigabytes on a 2-core CI box)."""
    yield
    jax.clear_caches()


# The longest test files (worker-seconds of the full suite on the 2-core CI
# machine, most first; `--durations=0` lists them). They run first: with
# `--dist loadfile` each file goes whole to the next free worker in collection
# order, and a long file that came last would keep one worker busy while the
# other idles (the wall time growing by up to that file's length). Longest first
# bounds that tail by the short files (`--no-loadscope-reorder` in pyproject.toml
# keeps this order: xdist's own puts the files with the most tests first, which
# sent the notebooks, 8 tests and the longest file, to the end). A hint for the
# scheduler only: a file missing here runs after these, in the usual order.
HEAVIEST_FIRST = (
    "test_notebooks.py",
    "test_newton.py",
    "test_models.py",
    "test_cfc.py",
    "test_training.py",
    "test_properties.py",
    "test_sharding.py",
    "test_gpu_suite.py",
    "test_block.py",
    "test_biophysical.py",
    "test_light_core.py",
    "test_cli.py",
    "test_benchmarks.py",
    "test_model_options.py",
    "test_ode_view.py",
)


def pytest_collection_modifyitems(config, items):
    """Reorder the test files: `HEAVIEST_FIRST`, then the rest as collected (the
    order within a file is kept)."""
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
