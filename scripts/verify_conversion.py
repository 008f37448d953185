"""Compares the legacy graph's outputs with the converted Keras model's.

The `verify` command of `python -m migrate` as a standalone script, the same
code and flags; `--help` lists them.
"""

import sys

from migrate import cli


def main(argv):
    return cli.main(argv, command=cli.VERIFY)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
