"""Kept for old command lines: the benchmark is ``python -m jaxconv bench`` now.

    python benchmarks/bench.py [args]  ==  python -m jaxconv bench [args]
"""

import sys

from jaxconv.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
