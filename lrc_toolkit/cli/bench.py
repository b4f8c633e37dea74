"""`lrc-toolkit bench`: run the benchmark scripts of `benchmarks/` (a source
checkout) in this process."""

import argparse
import importlib.util
import sys
from pathlib import Path


BENCHMARKS = ("forward", "gradient", "iterations", "ode", "scan")


def benchmarks_dir() -> Path:
    """The repository's `benchmarks/` folder (the package must be installed from a
    source checkout, e.g. `pip install -e .`)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks"
    if not (path / "_common.py").exists():
        raise FileNotFoundError(
            f"No benchmark scripts at {path}: `lrc-toolkit bench` runs the scripts of a "
            "source checkout. Clone the repository and `pip install -e .` there."
        )
    return path


def load(name: str):
    """Import `benchmarks/<name>.py` as a module."""
    folder = benchmarks_dir()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the scripts import `_common`
    spec = importlib.util.spec_from_file_location(
        f"_lrc_bench_{name}", folder / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_bench_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run the speed and memory benchmarks (benchmarks/*.py)",
        description=(
            "Run benchmark scripts from the repository's benchmarks/ folder: "
            "forward (a, d), gradient (b, d), iterations (c), ode (e), scan, or all; "
            "then print the README table. Every argument after the name goes to the "
            "script(s): --quick, --repeats N, --out DIR, --no-plot, and grid "
            "overrides such as --T 1000 4000 --D 16 (see `python "
            "benchmarks/forward.py --help`)."
        ),
    )
    p.add_argument("name", choices=(*BENCHMARKS, "all"))
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    p.set_defaults(func=run_bench)


def run_bench(args) -> int:
    names = BENCHMARKS if args.name == "all" else (args.name,)
    script_args = [a for a in args.args if a != "--"]
    for name in names:
        print(f"== benchmarks/{name}.py", flush=True)
        load(name).main(script_args)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", default=None)
    out = parser.parse_known_args(script_args)[0].out
    load("summary").main([] if out is None else ["--out", out])
    return 0
