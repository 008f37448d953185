"""The package version, in one place: the manifest, reports and `pyproject.toml` agree on it."""

__version__ = "0.1.0"
