"""The JSON messages the service writes, and how events are encoded back.

Formats (Avro schemas in ``schema/``):
  prediction result  {"event_type": "prediction result", "event_timestamp",
                      "focus_event_id", "payload": {"customer_id",
                      "coupon_id", "prediction"}}; key: customer_id.
  dead letter        {"reason", "detail", "source_topic", "source_partition",
                      "source_offset", "source_end_offset", "original_base64", "original_size",
                      "original_sha256", "truncated"}; key: the source position
                      ("topic/partition/offset"). Bounded whatever the input: it
                      carries at most ``max_original_bytes`` of the original (its
                      first bytes), with the whole one's size and SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Optional, Union

from transforms.domain import (
    CouponPrediction,
    DeadLetter,
    EntryEvent,
    FocusEvent,
    SourcePosition,
    UndecodableBatch,
)

PREDICTION_EVENT_TYPE = 'prediction result'
KafkaMessage = tuple[Optional[bytes], bytes]
DEFAULT_MAX_ORIGINAL_BYTES = 64 * 1024


def _json_bytes(message: dict) -> bytes:
    return json.dumps(message, separators=(',', ':')).encode('utf-8')


def encode_event(event: Union[EntryEvent, FocusEvent]) -> bytes:
    """The event as the seed's JSON message."""
    if isinstance(event, FocusEvent):
        return _json_bytes(
            {
                'event_type': 'customer focus',
                'event_timestamp': event.event_timestamp,
                'payload': {'customer_id': event.customer_id, 'department_id': event.department_id},
            }
        )
    return _json_bytes(
        {
            'event_type': 'customer entry',
            'event_timestamp': event.event_timestamp,
            'payload': {'customer_id': event.customer_id},
        }
    )


def dead_letter_for(event: Union[EntryEvent, FocusEvent], reason: str, detail: str) -> DeadLetter:
    """A dead letter for an event that was valid but could not be processed."""
    return DeadLetter(reason, detail, event.source, encode_event(event))


def undecodable_dead_letter(batch: UndecodableBatch) -> DeadLetter:
    """The dead letter of a range the Kafka client could not decode: it names the range;
    there is no original to carry (the bytes could not be read as records)."""
    return DeadLetter(
        'undecodable_batch',
        f'offsets {batch.start} to {batch.end - 1} of {batch.topic}/{batch.partition} '
        f'could not be decoded: {batch.error}',
        SourcePosition(batch.topic, batch.partition, batch.start),
        None,
        source_end=batch.end,
    )


def prediction_result_message(focus: FocusEvent, coupon: CouponPrediction) -> KafkaMessage:
    """One prediction result, keyed by customer_id."""
    message = {
        'event_type': PREDICTION_EVENT_TYPE,
        'event_timestamp': focus.event_timestamp,
        'focus_event_id': focus.focus_id,
        'payload': {
            'customer_id': focus.customer_id,
            'coupon_id': coupon.coupon_id,
            'prediction': coupon.prediction,
        },
    }
    return str(focus.customer_id).encode('utf-8'), _json_bytes(message)


def dead_letter_message(
    letter: DeadLetter, max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES
) -> KafkaMessage:
    """A dead-letter record, keyed by the position of the input it stands for; the original
    is cut to its first ``max_original_bytes`` (and ``detail`` to as many characters)."""
    source = letter.source
    message = {
        'reason': letter.reason,
        'detail': letter.detail[:max_original_bytes],
        'source_topic': source.topic if source else None,
        'source_partition': source.partition if source else None,
        'source_offset': source.offset if source else None,
        'source_end_offset': letter.source_end,
        **_bounded_original(letter.original, max_original_bytes),
    }
    key = source.event_id.encode('utf-8') if source else None
    return key, _json_bytes(message)


def _bounded_original(original: Optional[bytes], max_bytes: int) -> dict:
    if original is None:
        return {
            'original_base64': None,
            'original_size': None,
            'original_sha256': None,
            'truncated': False,
        }
    return {
        'original_base64': base64.b64encode(original[:max_bytes]).decode('ascii'),
        'original_size': len(original),
        'original_sha256': hashlib.sha256(original).hexdigest(),
        'truncated': len(original) > max_bytes,
    }
