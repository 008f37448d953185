"""Lists a legacy TF1 checkpoint's variables with shapes, bytes and roles.

The `inspect` command of `python -m migrate` as a standalone script, the same
code and flags; `--help` lists them.
"""

import sys

from migrate import cli


def main(argv):
    return cli.main(argv, command=cli.INSPECT)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
