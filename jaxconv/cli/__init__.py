"""The ``jaxconv`` command line (also ``python -m jaxconv``).

    jaxconv verify                # every impl against the others and PyTorch
    jaxconv bench                 # time every impl, auto, raw lax and PyTorch
    jaxconv bench --list          # the benchmark's layers and their shapes
    jaxconv bench --explain       # what auto picks for each layer, and why
    jaxconv COMMAND --help        # a command's options

One module per subcommand, each a thin shell over library functions (``bench``:
:mod:`jaxconv.benchmark`; ``verify``: :mod:`jaxconv.verify`).
"""

from __future__ import annotations

import argparse

import jax

from jaxconv import __version__
from jaxconv.cli import bench, verify
from jaxconv.cli._util import description


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="jaxconv", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=description(__doc__.split("\n\nOne module")[0]))
    parser.add_argument("--version", action="version",
                        version=f"jaxconv {__version__} (jax {jax.__version__})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench.add_parser(commands)
    verify.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)
