"""The message schemas of the coupon-scoring service.

The ``.avsc`` files are Avro schemas of the JSON messages on the Kafka topics;
``prediction.schema.json`` is the scorer's request/response contract.
"""

import functools
import json
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def avro_schema(name: str) -> Any:
    """The parsed Avro schema ``schema/<name>.avsc``."""
    return fastavro.parse_schema(json.loads((SCHEMA_DIR / f'{name}.avsc').read_text()))
