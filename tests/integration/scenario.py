"""A fixed store scenario, and the outputs expected of it, computed independently.

The expectations come from the central's SQLite database and the scorer's
stored weights (``standins/scorer/weights.json``) with the formula written out
here again, not from the pipeline's code nor the scorer's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from tests.corpus import CORPUS

WEIGHTS = Path(__file__).resolve().parents[2] / 'standins' / 'scorer' / 'weights.json'
TOP_K = 5
THRESHOLD = 0.2
UNKNOWN_DEPARTMENT = 99
PROFILE_COLUMNS = (
    'age_range',
    'marital_status',
    'family_size',
    'no_of_children',
    'income_bracket',
    'gender',
    'mean_discount_used',
    'unique_items_bought',
    'mean_selling_price_paid',
    'mean_quantity',
    'total_discount_used',
    'total_coupons_used',
    'total_price_paid',
    'total_quantity',
)

# The bad-input corpus (tests/corpus.py) but for values the broker refuses: Kafka's
# default message.max.bytes is about 1 MiB (the parser's handling of those is unit-tested).
BROKER_MAX_BYTES = 1_000_000
BAD_INPUT = tuple(bad for bad in CORPUS if bad.value is None or len(bad.value) < BROKER_MAX_BYTES)


@dataclasses.dataclass(frozen=True)
class Message:
    """One message to produce: which topic, key, value; and what it is."""

    topic_kind: str  # 'entry' | 'focus'
    key: Optional[bytes]
    value: Optional[bytes]  # None: a tombstone
    kind: str  # 'entry' | 'focus' | a dead-letter reason
    customer_id: Optional[int] = None
    department_id: Optional[int] = None
    event_timestamp: Optional[str] = None


def timestamp_now() -> str:
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def _event(kind: str, customer_id: int, department_id: Optional[int] = None) -> Message:
    stamp = timestamp_now()
    payload: dict[str, Any] = {'customer_id': customer_id}
    if department_id is not None:
        payload['department_id'] = department_id
    value = json.dumps(
        {'event_type': f'customer {kind}', 'event_timestamp': stamp, 'payload': payload}
    ).encode()
    return Message(kind, str(customer_id).encode(), value, kind, customer_id, department_id, stamp)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Customers with an entry and focus events, in three waves."""

    known: tuple[int, ...] = tuple(range(1, 201))  # entry, then focus events
    early: tuple[int, ...] = tuple(range(201, 221))  # first focus event before the entry
    never_entered: tuple[int, ...] = tuple(range(221, 226))  # focus events, no entry
    unknown: tuple[int, ...] = tuple(range(900001, 900011))  # unknown to the central

    def departments(self, customer_id: int) -> list[int]:
        """The departments a customer stops in: 2 to 4 of them, fixed by the id."""
        count = 2 + customer_id % 3
        return [(customer_id + step) % 5 + 1 for step in range(count)]

    warm_customer: int = 300  # in no group above; has coupons above the threshold in dept 1

    def warm_up(self) -> list[Message]:
        """An entry and a focus event of a customer of its own: once its predictions are out,
        the pipeline is warm (every stage started, the coupon catalogue loaded)."""
        return [_event('entry', self.warm_customer), _event('focus', self.warm_customer, 1)]

    def small_wave(self, count: int) -> list[Message]:
        """The warm-up, then an entry and the focus events of ``count`` known customers."""
        messages = self.warm_up()
        for customer in self.known[:count]:
            messages.append(_event('entry', customer))
            messages += [_event('focus', customer, d) for d in self.departments(customer)]
        return messages

    def before_entries(self) -> list[Message]:
        """Wave 1: a first focus event of the 'early' customers, ahead of their entry."""
        return [_event('focus', c, self.departments(c)[0]) for c in self.early]

    def main_wave(self) -> list[Message]:
        """Wave 2: every entry, then the remaining focus events, and the bad-input corpus."""
        entered = self.known + self.early + self.unknown
        messages = [_event('entry', c) for c in entered]
        for c in self.known + self.unknown + self.never_entered:
            messages += [_event('focus', c, d) for d in self.departments(c)]
        messages += [_event('focus', c, d) for c in self.early for d in self.departments(c)[1:]]
        messages.append(_event('focus', self.known[0], UNKNOWN_DEPARTMENT))
        messages += [
            Message(bad.topic_kind, bad.name.encode(), bad.value, bad.reason) for bad in BAD_INPUT
        ]  # a key: Kafka takes a tombstone only with one
        return messages


class IndependentModel:
    """The logistic regression of weights.json, written out again."""

    def __init__(self, db_path: Path):
        self._weights = json.loads(WEIGHTS.read_text())
        with sqlite3.connect(db_path) as db:
            db.row_factory = sqlite3.Row
            self._customers = {
                row['customer_id']: {c: row[c] for c in PROFILE_COLUMNS}
                for row in db.execute('SELECT * FROM customers')
            }
            self._coupons: dict[int, list[dict[str, Any]]] = {}
            for row in db.execute('SELECT * FROM coupons ORDER BY coupon_id'):
                self._coupons.setdefault(row['department_id'], []).append(dict(row))

    def has_department(self, department_id: int) -> bool:
        return department_id in self._coupons

    def _probability(self, features: dict[str, Any]) -> float:
        logit = self._weights['bias']
        for name, term in self._weights['numeric'].items():
            if features.get(name) is not None:
                logit += term['weight'] * (features[name] - term['center']) / term['scale']
        for name, table in self._weights['categorical'].items():
            logit += table.get(str(features.get(name)), 0.0)
        return round(1.0 / (1.0 + math.exp(-logit)), 6)

    def best_coupons(
        self,
        customer_id: int,
        department_id: int,
        with_profile: bool = True,
        threshold: float = THRESHOLD,
        top_k: int = TOP_K,
    ) -> list[tuple[int, float]]:
        """(coupon_id, prediction) of the top K at or above the threshold, best first;
        ``with_profile=False``: as scored with the default context (no profile)."""
        profile = self._customers.get(customer_id, {}) if with_profile else {}
        scored = []
        for coupon in self._coupons[department_id]:
            features = {
                **profile,
                'department_id': department_id,
                'coupon_mean_discount': coupon['mean_coupon_discount'],
                'coupon_mean_item_price': coupon['mean_item_price'],
            }
            scored.append((coupon['coupon_id'], self._probability(features)))
        eligible = [s for s in scored if s[1] >= threshold]
        return sorted(eligible, key=lambda s: (-s[1], s[0]))[:top_k]
