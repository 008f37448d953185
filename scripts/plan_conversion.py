"""Checks a conversion without writing anything (unmapped, unfilled, shapes, collisions).

The `plan` command of `python -m migrate` as a standalone script, the same
code and flags; `--help` lists them.
"""

import sys

from migrate import cli


def main(argv):
    return cli.main(argv, command=cli.PLAN)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
