"""The `vertebra` command line.

    vertebra phantom --cohort ctc_test --spacing 2 --out DIR      write a synthetic cohort
    vertebra find-l1 SCAN --out DIR                                direct U-Net: L1 mask + JSON
    vertebra label-spine SCAN --out DIR                            instance method: labelled spine
    vertebra pseudomask SCAN --out DIR                             the classical spine tool
    vertebra reproduce --scale quick --rows all                    run notebooks, collect results
    vertebra book                                                  render the book from results/
    vertebra fetch-real-ct                                         fetch the one real CT used in the book

Bad input exits with code 2 and one line naming the file and the problem; a crash exits 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import EXIT_BAD_INPUT, InputError

# subcommand → "module:function"; each module defines `add_arguments(parser)` next to the function,
# named `<function>_arguments`, so that every command's options live beside its code.
COMMANDS = {
    "phantom": ("vertebra.phantom.cohorts", "cli_phantom", "write a synthetic CT cohort"),
    "find-l1": ("vertebra.direct", "cli_find_l1", "find L1 in a CT scan with the direct 3D U-Net"),
    "label-spine": ("vertebra.instance.cli", "cli_label_spine",
                    "label every vertebra with the iterative instance segmentation"),
    "pseudomask": ("vertebra.pseudomask.pipeline", "cli_pseudomask",
                   "segment and number the spine with the classical tool"),
    "reproduce": ("vertebra.reproduce", "cli_reproduce", "run the notebooks for the Table 2 rows"),
    "book": ("vertebra.reproduce", "cli_book", "render the book from results/"),
    "fetch-real-ct": ("vertebra.datasets", "cli_fetch_real_ct", "fetch the real CT case"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vertebra", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, func, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # a method not built yet: the command says so when run
            p.set_defaults(_missing=f"{name} is unavailable: {exc}")
            continue
        getattr(mod, f"{func}_arguments")(p)
        p.set_defaults(_run=getattr(mod, func))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "_missing", None):
        print(f"vertebra: {args._missing}", file=sys.stderr)
        return 1
    try:
        return int(args._run(args) or 0)
    except InputError as exc:
        print(f"vertebra {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
