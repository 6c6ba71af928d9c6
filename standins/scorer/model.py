"""The coupon-usage model: a hand-set logistic regression read from ``weights.json``.

``p = sigmoid(bias + sum(weight * (x - center) / scale) + sum(table[feature][str(value)]))``;
a missing or null numeric feature and a missing or unknown categorical value contribute 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

WEIGHTS_PATH = Path(__file__).with_name("weights.json")


@dataclass(frozen=True)
class NumericTerm:
    """One standardised numeric feature: contributes ``weight * (x - center) / scale``."""

    center: float
    scale: float
    weight: float

    def contribution(self, name: str, value: Any) -> float:
        """This term's share of the logit; 0 for a missing value."""
        if value is None:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number or null, got {value!r}")
        return self.weight * (value - self.center) / self.scale


@dataclass(frozen=True)
class CouponModel:
    """Logistic regression over customer and coupon features."""

    bias: float
    numeric: Mapping[str, NumericTerm]
    categorical: Mapping[str, Mapping[str, float]]

    @classmethod
    def from_weights(cls, weights: Mapping[str, Any]) -> CouponModel:
        """Build from the ``weights.json`` structure."""
        return cls(
            bias=float(weights["bias"]),
            numeric={name: NumericTerm(**term) for name, term in weights["numeric"].items()},
            categorical={name: dict(table) for name, table in weights["categorical"].items()},
        )

    @property
    def features(self) -> list[str]:
        """Names of every feature the model reads."""
        return [*self.numeric, *self.categorical]

    def predict(self, instance: Mapping[str, Any]) -> float:
        """Probability, rounded to 6 decimals, that the instance's customer uses its coupon."""
        logit = self.bias
        for name, term in self.numeric.items():
            logit += term.contribution(name, instance.get(name))
        for name, table in self.categorical.items():
            logit += table.get(str(instance.get(name)), 0.0)
        return round(_sigmoid(logit), 6)


@cache
def load_model(path: Path = WEIGHTS_PATH) -> CouponModel:
    """The model stored at ``path`` (loaded once per path)."""
    return CouponModel.from_weights(json.loads(path.read_text()))


def predict(instance: Mapping[str, Any]) -> float:
    """Score one instance with the checked-in weights."""
    return load_model().predict(instance)


def _sigmoid(x: float) -> float:
    """Logistic function, safe from overflow for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
