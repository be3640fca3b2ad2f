"""Failed attempts per key in a sliding window: what slows password guessing at sign-in.

Pure: the caller passes the time (monotonic seconds). Memory is bounded: past
``max_keys`` keys the least recently failed is forgotten (an attacker spraying
keys gets throttled per address instead, which the caller also keys on).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """``limit`` failures within ``window_s`` lock a key until the oldest one ages out."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 100_000) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be at least 1 and window_s positive")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: Hashable, now: float) -> float | None:
        """Seconds until ``key`` may try again, or None when it may try now."""
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return None
        return times[-self.limit] + self.window_s - now

    def failed(self, key: Hashable, now: float) -> None:
        """Count one failure of ``key`` at ``now``."""
        times = self._recent(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def forget(self, key: Hashable) -> None:
        """Clear ``key``'s failures (after it succeeded)."""
        self._failures.pop(key, None)
