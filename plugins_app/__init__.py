"""User-installed JavaScript plugins for Django, run in sandboxed V8 processes."""

# The one place the version is written: pyproject.toml reads it (``dynamic``), and so
# does ``manage.py plugins doctor``.
__version__ = "0.1.0"
