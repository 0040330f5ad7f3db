"""Exceptions a user is meant to read.

Every expected failure (bad input, bad config, corrupt file) is a `SpreadwatchError` whose message is one line
naming what is wrong; the CLI prints it without a traceback and exits non-zero: 2 for a `MalformedValue` (the
command line itself is wrong, as click's usage errors), 1 for the others. Anything else is a bug.
"""


class SpreadwatchError(Exception):
    """An expected, user-facing failure. The message is one line."""


class ConfigError(SpreadwatchError):
    """The configuration file or a setting is invalid."""


class InputError(SpreadwatchError):
    """A command-line value or an input file is invalid."""


class MalformedValue(InputError):
    """A command-line value that is not a valid value of its kind on its own, whatever the config, the clock, the
    calendar, the book or the disk hold: not a number, not finite, beyond its bound, an unknown term, text that is
    not valid UTF-8, not an ISO 8601 instant with a zone, not a usable position id. Read from a file (an import, a
    config, a grid) the same value is that file's bad content: callers there re-raise it as a plain error."""


class DataError(SpreadwatchError):
    """A data file (grid, replay, database) is missing, corrupt or of the wrong kind."""
