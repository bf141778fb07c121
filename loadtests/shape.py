"""The load's shape over time: a quiet start, a ramp to the peak, a hold, a fall back.

Pure arithmetic (no Locust import), so the runner can print the planned phases and the
Locust shape class can follow them. The fall back to a few users, held to the end, is
what lets the autoscaler show replicas going down again within one bounded run.
"""
from __future__ import annotations

from dataclasses import dataclass

QUIET_END = 0.10  # fraction of the run at the base load before the ramp
PEAK_END = 0.55   # fraction of the run after which the load falls back to the base


@dataclass(frozen=True)
class Shape:
    peak_users: int
    spawn_rate: float  # users started per second on the way up (stopped twice as fast)
    duration_s: float

    @property
    def base_users(self) -> int:
        return max(1, self.peak_users // 10)

    def target(self, t: float) -> tuple[int, float] | None:
        """(users wanted, users per second to get there) at t seconds; None: the run is over."""
        if t >= self.duration_s:
            return None
        if t < QUIET_END * self.duration_s:
            return self.base_users, self.spawn_rate
        if t < PEAK_END * self.duration_s:
            return self.peak_users, self.spawn_rate
        return self.base_users, self.spawn_rate * 2

    def phases(self) -> str:
        d = self.duration_s
        ramp = (self.peak_users - self.base_users) / self.spawn_rate
        return (f"{self.base_users} users for {QUIET_END * d:.0f}s, ramp to {self.peak_users} "
                f"(~{ramp:.0f}s), hold until {PEAK_END * d:.0f}s, back to {self.base_users} "
                f"until {d:.0f}s")
