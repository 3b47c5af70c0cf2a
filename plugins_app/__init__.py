"""User-installed JavaScript plugins for Django, run in sandboxed V8 processes."""
