"""The root of every error Flare raises on purpose.

Each layer subclasses :class:`FlareError`; the CLI prints any of them as one line
and exits non-zero, so a user never sees a traceback for bad input.
"""


class FlareError(Exception):
    """Base class of every deliberate Flare error."""


class ConfigError(FlareError, ValueError):
    """An option or argument is out of range or names something unknown."""


class DataError(FlareError, ValueError):
    """A data set is missing, unreadable or malformed."""
