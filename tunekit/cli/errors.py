"""The `tunekit` command's error type and exit codes.

A `UsageError` is a mistake the user can fix (a flag, a config key, a missing file): `main` prints its message
without a traceback and exits with `EXIT_USAGE`. The library's own input checks (`ValueError`, `TypeError`,
missing files, missing optional packages) become usage errors inside `user_errors()`.

Example:

>>> with user_errors():
...     int("two")
Traceback (most recent call last):
...
tunekit.cli.errors.UsageError: invalid literal for int() with base 10: 'two'
"""

import contextlib

PROG = "tunekit"
EXIT_OK = 0
EXIT_FAILURE = 1  # a failure while working; --traceback shows where
EXIT_USAGE = 2  # a usage or configuration error, found before any work
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line, the config or the input files: exit code 2, message without traceback."""


@contextlib.contextmanager
def user_errors():
    """Turns the library's input-validation errors (raised before any work) into `UsageError`."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise UsageError(str(message)) from error
    except ImportError as error:
        # Missing optional packages (a backbone package, an extra): the message says what to install.
        raise UsageError(str(error)) from error
