"""API keys: where they come from, and the constant-time check of `Authorization: Bearer <key>`.

Keys come from the environment variable `TUNEKIT_API_KEYS` (comma-separated) and/or a key file (one key per
line; blank lines and `#` comments ignored). Keys are never logged or echoed back.

Example:

>>> keys = load_api_keys(environ={"TUNEKIT_API_KEYS": "k1-0123456789abcdef,k2-0123456789abcdef"})
>>> checker = KeyChecker(keys)
>>> checker.check("Bearer k2-0123456789abcdef")
>>> checker.check("Bearer wrong")
'invalid_token'
"""

import os
import secrets

API_KEYS_ENV = "TUNEKIT_API_KEYS"
MIN_KEY_LENGTH = 16


def load_api_keys(key_file=None, environ=None):
    """The API keys from `TUNEKIT_API_KEYS` and `key_file` (either or both), as a tuple of strings."""
    environ = os.environ if environ is None else environ
    keys = [key.strip() for key in environ.get(API_KEYS_ENV, "").split(",")]
    if key_file is not None:
        try:
            with open(key_file, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except OSError as error:
            raise ValueError(f"Cannot read the API key file {os.fspath(key_file)!r}: {error.strerror}.") from None
        keys += [line.strip() for line in lines if not line.strip().startswith("#")]
    keys = tuple(dict.fromkeys(key for key in keys if key))
    for index, key in enumerate(keys):
        # The message names the key's position, never the key.
        if len(key) < MIN_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
            raise ValueError(
                f"API key #{index + 1} is unusable: keys must be at least {MIN_KEY_LENGTH} printable ASCII "
                "characters without spaces (generate one with `python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\"`).")
    return keys


class KeyChecker:
    """Checks an `Authorization` header value against the keys in constant time (per key)."""

    def __init__(self, keys):
        self._keys = tuple(key.encode("ascii") for key in keys)

    def check(self, authorization):
        """None when the header carries a valid key, else the RFC 6750 error code: `invalid_request` (no or
        malformed header) or `invalid_token` (a wrong key)."""
        return self.identify(authorization)[0]

    def identify(self, authorization):
        """`(error, index)`: `(None, i)` when the header carries the i-th key (0-based), else `(code, None)` with
        the RFC 6750 error code, as `check` returns it."""
        if not authorization:
            return "invalid_request", None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "invalid_request", None
        token = token.strip().encode("utf-8", "replace")
        matched = None
        for index, key in enumerate(self._keys):  # compare with every key, so timing does not tell which one matched
            if secrets.compare_digest(token, key):
                matched = index
        return ("invalid_token", None) if matched is None else (None, matched)
