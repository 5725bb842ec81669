"""Errors meant for the user: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input or set-up the user can fix (missing camera, corrupt weights, ...)."""
