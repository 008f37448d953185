"""Converts a legacy TF1 checkpoint into a TF2 checkpoint for a Keras model.

The `convert` command of `python -m migrate` as a standalone absl script; every
flag of `python -m migrate` applies (see --helpfull).
"""

from absl import app

from migrate import cli


def main(argv):
    return cli.main([argv[0], "convert", *argv[1:]])


if __name__ == "__main__":
    app.run(main)
