"""Retry policy shared by the in-process buses and every broker adapter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` deliveries in all (the first one included), waiting
    `delays[n-1]` seconds before attempt n+1; the last delay repeats."""

    max_attempts: int = 5
    delays: Sequence[float] = (0.5, 2.0, 10.0)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if any(d < 0 for d in self.delays):
            raise ValueError("retry delays must be >= 0")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed delivery number `attempt` (1-based)."""
        if not self.delays:
            return 0.0
        return float(self.delays[min(attempt, len(self.delays)) - 1])

    def gives_up_after(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
