"""Errors the CLI shows as one line without a traceback."""


class UsageError(Exception):
    """A bad argument or missing prerequisite the user can fix."""
