"""The one user-facing error type of the command line."""


class CliError(Exception):
    """Printed as `cise: error: ...` with exit status 2, no traceback; nothing was changed."""
