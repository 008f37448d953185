"""Compares the legacy graph's outputs with the converted Keras model's.

The `verify` command of `python -m migrate` as a standalone absl script; every
flag of `python -m migrate` applies (see --helpfull).
"""

from absl import app

from migrate import cli


def main(argv):
    return cli.main([argv[0], "verify", *argv[1:]])


if __name__ == "__main__":
    app.run(main)
