"""Early stopping on a detector's series by its change rate (InfoRM appendix G, Algorithm 1).

    D_t = |C_t - C_{t-1}|,     e_t = D_t / mean(D_1 .. D_{t-1}),     stop when e_t > e_max

C_0 is the value at step 0 (the SFT policy); so the first ratio exists at t = 2, once two
differences do. A previous mean of 0 gives e_t = inf when D_t > 0 (a jump out of a flat
series) and 0 when D_t = 0.
"""
from __future__ import annotations

import math


class ChangeRateStop:
    def __init__(self, e_max: float = 10.0):
        self.e_max = e_max
        self.values: list[float] = []
        self.diffs: list[float] = []
        self.fired_at: int | None = None  # index t of the eval step where it fired

    def ratio(self) -> float | None:
        """e_t of the latest value, None while fewer than two differences exist."""
        if len(self.diffs) < 2:
            return None
        prev = sum(self.diffs[:-1]) / len(self.diffs[:-1])
        if prev == 0:
            return math.inf if self.diffs[-1] > 0 else 0.0
        return self.diffs[-1] / prev

    def update(self, value: float) -> bool:
        """Add C_t; True when the rule fires (and from then on)."""
        if self.values:
            self.diffs.append(abs(value - self.values[-1]))
        self.values.append(value)
        if self.fired_at is None:
            e = self.ratio()
            if e is not None and e > self.e_max:
                self.fired_at = len(self.values) - 1
        return self.fired_at is not None

    def state_dict(self) -> dict:
        return {"e_max": self.e_max, "values": list(self.values), "diffs": list(self.diffs), "fired_at": self.fired_at}

    def load_state_dict(self, state: dict) -> None:
        self.e_max, self.values, self.diffs, self.fired_at = state["e_max"], state["values"], state["diffs"], state["fired_at"]
