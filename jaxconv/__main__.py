"""``python -m jaxconv <command>``: the jaxconv command line (see ``--help``)."""

from jaxconv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
