"""The ``jaxconv`` command line: one module per subcommand, each a thin shell over
library functions (``bench``: :mod:`jaxconv.benchmark`; ``verify``:
:mod:`jaxconv.verify`)."""

from __future__ import annotations

import argparse

from jaxconv.cli import bench, verify


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxconv", description="jaxconv command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    bench.add_parser(commands)
    verify.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)
