"""The package's version: the one place it is written (see pyproject.toml)."""

__version__ = "0.2.0"
