"""Lists a legacy TF1 checkpoint's variables with shapes, bytes and roles.

The `inspect` command of `python -m migrate` as a standalone absl script; every
flag of `python -m migrate` applies (see --helpfull).
"""

from absl import app

from migrate import cli


def main(argv):
    return cli.main([argv[0], "inspect", *argv[1:]])


if __name__ == "__main__":
    app.run(main)
