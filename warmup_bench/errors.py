"""The one base class of the errors a user can cause: a bad name or value, a bad file, a
run folder in the way, an output that cannot be written. The CLI turns every UserError
into one line on stderr and exit code 2; anything else is a failure or a bug."""


class UserError(Exception):
    """A mistake or a foreseeable fault the user can fix; its message is one line."""


class ConfigError(UserError, ValueError):
    """A bad name or value in a configuration: a user-facing one-line message."""


class DataError(Exception):
    """A data set is missing, corrupt, or not what it claims to be (a user-facing message)."""
