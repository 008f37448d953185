"""Converts a legacy TF1 checkpoint into a TF2 checkpoint for a Keras model.

The `convert` command of `python -m migrate` as a standalone script, the same
code and flags; `--help` lists them.
"""

import sys

from migrate import cli


def main(argv):
    return cli.main(argv, command=cli.CONVERT)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
