"""The `lrc-toolkit` command line: one module per subcommand (`train`, `evaluate`,
`compare`, `ablate`, `bench`), shared options in `_args`."""

import argparse
import os
import sys
from collections.abc import Sequence

from ._args import USER_ERRORS
from .ablate import add_ablate_parser
from .bench import add_bench_parser
from .compare import add_compare_parser
from .evaluate import add_evaluate_parser
from .train import add_train_parser


SUBCOMMANDS = [
    add_train_parser,
    add_evaluate_parser,
    add_compare_parser,
    add_ablate_parser,
    add_bench_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrc-toolkit",
        description="Liquid neural networks (LRC, LrcSSM) in JAX.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback (also with LRC_TOOLKIT_DEBUG=1)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


# Solver outcomes (`RESULTS` members, by name), translated into command-line options.
_HINTS = {
    "unstable_step": "--discretisation semi-implicit or implicit (stable for any "
    "step), or a smaller --dt.",
    "nonfinite_states": "--discretisation implicit, a smaller --dt, or with --solver "
    "parallel --fallback or --damping 1.0.",
    "newton_max_iters_reached": "--max-iters, --rtol/--atol, or --fallback.",
}


def _runtime_message(e: Exception) -> str:
    """The cause and the fix: a failed solve's message plus a hint in terms of this
    command's options, chosen by its `RESULTS` member; for another run-time check,
    its message without JAX's stack."""
    from .. import SolveError

    error = SolveError.from_exception(e)
    if error is None:
        lines = str(e).splitlines()
        ours = [
            line for line in lines if line.startswith("equinox.EquinoxRuntimeError")
        ]
        return ours[0].partition(": ")[2] if ours else str(e)
    hint = _HINTS.get(error.outcome)
    return error.message + (f" On the command line: {hint}" if hint else "")


def _debug(args) -> bool:
    return args.debug or os.environ.get("LRC_TOOLKIT_DEBUG", "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import equinox as eqx

    from ..training import CheckpointError

    try:
        return args.func(args) or 0
    except (*USER_ERRORS, CheckpointError) as e:
        if _debug(args):
            raise
        print(f"lrc-toolkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except eqx.EquinoxRuntimeError as e:
        if _debug(args):
            raise
        print(
            f"lrc-toolkit {args.command}: error: {_runtime_message(e)} (Run with "
            "--debug or LRC_TOOLKIT_DEBUG=1 for the full traceback.)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
