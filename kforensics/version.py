"""The kforensics version: the one definition (pyproject.toml reads it; cases record it)."""

__version__ = "0.1.0"
