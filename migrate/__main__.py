"""`python -m migrate COMMAND --flags`: the command line's process entry (see `migrate.cli`)."""

from migrate import cli

if __name__ == "__main__":
    cli.run()
