"""Exceptions a user is meant to read.

Every expected failure (bad input, bad config, corrupt file) is a `SpreadwatchError` whose message is one line
naming what is wrong; the CLI prints it without a traceback and exits non-zero. Anything else is a bug.
"""


class SpreadwatchError(Exception):
    """An expected, user-facing failure. The message is one line."""


class ConfigError(SpreadwatchError):
    """The configuration file or a setting is invalid."""


class InputError(SpreadwatchError):
    """A command-line value or an input file is invalid."""


class DataError(SpreadwatchError):
    """A data file (grid, replay, database) is missing, corrupt or of the wrong kind."""
