"""Checks a conversion without writing anything (unmapped, unfilled, shapes, collisions).

The `plan` command of `python -m migrate` as a standalone absl script; every
flag of `python -m migrate` applies (see --helpfull).
"""

from absl import app

from migrate import cli


def main(argv):
    return cli.main([argv[0], "plan", *argv[1:]])


if __name__ == "__main__":
    app.run(main)
