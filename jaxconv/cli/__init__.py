"""The ``jaxconv`` command line: one module per subcommand, each a thin shell over
library functions (``bench``: :mod:`jaxconv.benchmark`)."""

from __future__ import annotations

import argparse

from jaxconv.cli import bench


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxconv", description="jaxconv command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    bench.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)
