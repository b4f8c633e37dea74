"""The `lrc-toolkit` command line: one module per subcommand (`train`, `evaluate`,
`compare`, `ablate`, `bench`), shared options in `_args`."""

import argparse
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
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


# Solver outcomes, translated into command-line options.
_HINTS = {
    "unstable": "On the command line: --discretisation semi-implicit or implicit "
    "(stable for any step), or time stamps with smaller steps.",
    "NaN, infinite or overflowed": "On the command line: --discretisation implicit, "
    "--fallback, or --damping 1.0.",
    "did not converge": "On the command line: --max-iters, --rtol/--atol, or "
    "--fallback.",
}


def _runtime_message(e: Exception) -> str:
    """The solver's own message (without JAX's debugging advice), plus a hint in
    terms of this command's options."""
    text = str(e)
    lines = [line for line in text.splitlines() if "LrcSSM block" in line]
    message = lines[0].removeprefix("equinox.EquinoxRuntimeError: ") if lines else text
    hints = [hint for key, hint in _HINTS.items() if key in message]
    return " ".join([message, *hints])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import equinox as eqx

    from ..training import CheckpointError

    try:
        return args.func(args) or 0
    except (*USER_ERRORS, CheckpointError) as e:
        print(f"lrc-toolkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except eqx.EquinoxRuntimeError as e:
        print(
            f"lrc-toolkit {args.command}: error: {_runtime_message(e)}", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
