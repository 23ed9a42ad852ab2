"""Per-API-key rate limits: one token bucket per key, shared by every worker process of the server.

Each key's bucket holds at most `burst` tokens and refills at `rate` tokens per second; a request takes one token,
and a request that finds the bucket empty is refused with the seconds until the next token (the server answers 429
with that `Retry-After`). Without API keys (`--allow-unauthenticated`) all clients share one bucket.

The buckets live in shared memory (`multiprocessing.RawArray`, guarded by a `multiprocessing.Lock`) and use the
system-wide monotonic clock, so a `RateLimiter` created before the workers are spawned holds one limit per key for
the whole server, not one per process.

Example:

>>> limiter = RateLimiter(parse_rate("2/s"), burst=2, keys=1)
>>> [limiter.acquire(0, now=100.0) for _ in range(3)]
[0.0, 0.0, 0.5]
>>> limiter.acquire(0, now=100.5)
0.0
>>> parse_rate("600/m")
10.0
"""

import math
import multiprocessing
import re
import time

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m)\s*$")
_PERIODS = {"s": 1.0, "m": 60.0}


def parse_rate(value):
    """Requests per second from `N/s` or `N/m` (N > 0); a ValueError naming the expected form otherwise."""
    match = _RATE.match(str(value))
    if match is None or not float(match.group(1)) > 0:
        raise ValueError(f"invalid rate {value!r}: give requests per second or per minute as N/s or N/m with "
                         "N > 0, e.g. 10/s or 600/m.")
    return float(match.group(1)) / _PERIODS[match.group(2)]


def parse_burst(value):
    """The bucket size from a string: an integer >= 1, else a ValueError naming the expected form."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"invalid burst {value!r}: give the most requests a key may send at once, an integer >= 1.")
    return int(text)


def default_burst(rate):
    """One second's worth of requests, at least 1."""
    return max(1, math.ceil(rate))


class RateLimiter:
    """Token buckets for `keys` API keys (slot i for the i-th key), in memory shared with spawned processes.

    Args:
        rate: tokens (requests) per second, > 0.
        burst: bucket size, an integer >= 1 (default: `default_burst(rate)`).
        keys: number of buckets (one per API key; 1 for a server without keys).
    """

    def __init__(self, rate, burst=None, keys=1):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ValueError(f"rate must be a number of requests per second > 0, got {rate!r}.")
        burst = default_burst(rate) if burst is None else burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {burst!r}.")
        if isinstance(keys, bool) or not isinstance(keys, int) or keys < 1:
            raise ValueError(f"keys must be an integer >= 1, got {keys!r}.")
        self.rate, self.burst, self.keys = float(rate), burst, keys
        self._lock = multiprocessing.get_context("spawn").Lock()
        # Per key: tokens left and when they were counted (NaN: never used, so the bucket is full).
        self._state = multiprocessing.RawArray("d", [float(burst), float("nan")] * keys)

    def acquire(self, key, now=None):
        """Takes a token from bucket `key`: 0.0 if the request may proceed, else the seconds until a token is due."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._state[2 * key], self._state[2 * key + 1]
            if not math.isnan(last):  # used before: refill for the time since
                tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            self._state[2 * key + 1] = now
            if tokens >= 1.0:
                self._state[2 * key] = tokens - 1.0
                return 0.0
            self._state[2 * key] = tokens
            return (1.0 - tokens) / self.rate
