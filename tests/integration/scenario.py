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

WEIGHTS = Path(__file__).resolve().parents[2] / 'standins' / 'scorer' / 'weights.json'
TOP_K = 5
THRESHOLD = 0.2
UNKNOWN_DEPARTMENT = 99
PROFILE_COLUMNS = (
    'age_range', 'marital_status', 'family_size', 'no_of_children', 'income_bracket', 'gender',
    'mean_discount_used', 'unique_items_bought', 'mean_selling_price_paid', 'mean_quantity',
    'total_discount_used', 'total_coupons_used', 'total_price_paid', 'total_quantity')

# Malformed values, one per class of bad input, with the reason expected.
MALFORMED_FOCUS = (
    ('not_utf8', b'\xff\xfe\x00 not text'),
    ('not_json', b'{"event_type": "customer focus", '),
    ('schema_mismatch', b'[1, 2, 3]'),
    ('schema_mismatch', b'{"event_type": "customer focus", "event_timestamp": "2021-03-18T08:29:02.160Z"}'),
    ('schema_mismatch', b'{"event_type": "customer focus", "event_timestamp": "2021-03-18T08:29:02.160Z", '
                        b'"payload": {"customer_id": "7", "department_id": 1}}'),
    ('unknown_event_type', b'{"event_type": "customer exit", "event_timestamp": "2021-03-18T08:29:02.160Z", '
                           b'"payload": {"customer_id": 7}}'),
    ('wrong_topic', b'{"event_type": "customer entry", "event_timestamp": "2021-03-18T08:29:02.160Z", '
                    b'"payload": {"customer_id": 7}}'),
    ('id_out_of_range', b'{"event_type": "customer focus", "event_timestamp": "2021-03-18T08:29:02.160Z", '
                        b'"payload": {"customer_id": 1000000000000000, "department_id": 1}}'),
    ('bad_timestamp', b'{"event_type": "customer focus", "event_timestamp": "yesterday", '
                      b'"payload": {"customer_id": 7, "department_id": 1}}'),
    ('too_large', b'{"event_type": "customer focus", "pad": "' + b'x' * 20000 + b'"}'),
)
MALFORMED_ENTRY = (
    ('wrong_topic', b'{"event_type": "customer focus", "event_timestamp": "2021-03-18T08:29:02.160Z", '
                    b'"payload": {"customer_id": 7, "department_id": 1}}'),
    ('not_json', b'hello'),
)


@dataclasses.dataclass(frozen=True)
class Message:
  """One message to produce: which topic, key, value; and what it is."""
  topic_kind: str  # 'entry' | 'focus'
  key: Optional[bytes]
  value: bytes
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
  value = json.dumps({'event_type': f'customer {kind}', 'event_timestamp': stamp,
                      'payload': payload}).encode()
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

  def before_entries(self) -> list[Message]:
    """Wave 1: a first focus event of the 'early' customers, ahead of their entry."""
    return [_event('focus', c, self.departments(c)[0]) for c in self.early]

  def main_wave(self) -> list[Message]:
    """Wave 2: every entry, then the remaining focus events, and the bad input."""
    entered = self.known + self.early + self.unknown
    messages = [_event('entry', c) for c in entered]
    for c in self.known + self.unknown + self.never_entered:
      messages += [_event('focus', c, d) for d in self.departments(c)]
    messages += [_event('focus', c, d) for c in self.early for d in self.departments(c)[1:]]
    messages.append(_event('focus', self.known[0], UNKNOWN_DEPARTMENT))
    messages += [Message('focus', None, value, reason) for reason, value in MALFORMED_FOCUS]
    messages += [Message('entry', None, value, reason) for reason, value in MALFORMED_ENTRY]
    return messages


class IndependentModel:
  """The logistic regression of weights.json, written out again."""

  def __init__(self, db_path: Path):
    self._weights = json.loads(WEIGHTS.read_text())
    with sqlite3.connect(db_path) as db:
      db.row_factory = sqlite3.Row
      self._customers = {row['customer_id']: {c: row[c] for c in PROFILE_COLUMNS}
                         for row in db.execute('SELECT * FROM customers')}
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

  def best_coupons(self, customer_id: int, department_id: int,
                   with_profile: bool = True) -> list[tuple[int, float]]:
    """(coupon_id, prediction) of the top K at or above the threshold, best first;
    ``with_profile=False``: as scored with the default context (no profile)."""
    profile = self._customers.get(customer_id, {}) if with_profile else {}
    scored = []
    for coupon in self._coupons[department_id]:
      features = {**profile, 'department_id': department_id,
                  'coupon_mean_discount': coupon['mean_coupon_discount'],
                  'coupon_mean_item_price': coupon['mean_item_price']}
      scored.append((coupon['coupon_id'], self._probability(features)))
    eligible = [s for s in scored if s[1] >= THRESHOLD]
    return sorted(eligible, key=lambda s: (-s[1], s[0]))[:TOP_K]
