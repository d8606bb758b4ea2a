"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations


class GanforgeError(Exception):
    """A problem with the user's input or files; the CLI prints it as one line."""

    exit_code = 1


class ConfigError(GanforgeError):
    """An unknown key, a value of the wrong type or out of range, an unknown preset."""

    exit_code = 2


class DataError(GanforgeError):
    """Data that is missing, empty, unreadable or of the wrong shape."""

    exit_code = 1


class DivergedError(GanforgeError):
    """Training produced NaN or infinity (a loss, a weight, or the generator's samples)."""

    exit_code = 1
