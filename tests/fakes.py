"""Test doubles shared by unit tests."""


class FakeClock:
    """A clock that only moves when something sleeps on it: `clock()` reads it, `clock.sleep(s)` advances it."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
