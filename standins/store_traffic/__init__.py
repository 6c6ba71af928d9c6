"""Store traffic: a deterministic stream of customer entry and focus events, sent to Kafka.

It stands in for the stores' event sources (a demo stream, and a load generator); it is not
part of the product.

    python -m standins.store_traffic [--rate R] [--duration S] [--visits N] [--as-fast-as-possible]
                                     [--entry-topic T] [--focus-topic T] [--bootstrap-servers HOST:PORT]
                                     [--customers N] [--seed S] [--early-focus-share F]
                                     [--unknown-customer-share F] [--malformed-share F]

A *visit* is a customer entering (an entry event) and then focusing on departments 1..5
(1 to 10 focus events). ``--concurrent-visits`` visits are in progress at any time, so their
events interleave and each visit's focus events spread over it. Some of the traffic is
deliberately faulty, each as a configurable share of the valid focus events:

- focus events sent before their visit's entry event (the entry follows a few events later);
- visits of unknown customers, whose ids lie above ``--customers`` (their entry is still sent);
- malformed messages on the focus topic, each after a valid focus event, cycling through
  :data:`MALFORMED_KINDS`.

The stream depends only on the settings and the seed; each message is stamped with the
wall-clock time it is sent at, so the pipeline's event-time logic sees the current time.
``--rate`` paces the valid focus events (entries and malformed messages go out alongside
them); the run stops after ``--duration`` seconds or ``--visits`` visits, whichever comes
first, or on Ctrl-C / SIGTERM, and then flushes the producer and prints a summary.

From Python (e.g. a benchmark)::

    summary = produce(TrafficConfig(entry_topic="demo.entry", focus_topic="demo.focus", visits=1000))

The package's modules, each importable on its own (this package re-exports their public names):

- :mod:`.stream`: the events and the deterministic generator of visits (:class:`StoreTraffic`);
- :mod:`.encoding`: an event stamped with a time as Kafka key and value (:func:`encode`);
- :mod:`.producer`: sending to Kafka (:func:`produce`, :class:`TrafficConfig`,
  :class:`TrafficSummary`);
- :mod:`.cli`: the command line (:func:`main`), run by ``__main__``.
"""

from standins.store_traffic.cli import main
from standins.store_traffic.encoding import (
    ABSURD_CUSTOMER_ID,
    ENTRY_EVENT_TYPE,
    FOCUS_EVENT_TYPE,
    encode,
    format_timestamp,
)
from standins.store_traffic.producer import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_ENTRY_TOPIC,
    DEFAULT_FOCUS_TOPIC,
    DEFAULT_RATE,
    FLUSH_TIMEOUT_S,
    METADATA_TIMEOUT_S,
    TrafficConfig,
    TrafficSummary,
    produce,
)
from standins.store_traffic.stream import (
    DEFAULT_CONCURRENT_VISITS,
    DEFAULT_EARLY_FOCUS_SHARE,
    DEFAULT_MALFORMED_SHARE,
    DEFAULT_SEED,
    DEFAULT_UNKNOWN_CUSTOMER_SHARE,
    ENTRY,
    FOCUS,
    MALFORMED_KINDS,
    MAX_FOCUS_PER_VISIT,
    StoreTraffic,
    TrafficEvent,
)

__all__ = [
    "ABSURD_CUSTOMER_ID",
    "DEFAULT_BOOTSTRAP_SERVERS",
    "DEFAULT_CONCURRENT_VISITS",
    "DEFAULT_EARLY_FOCUS_SHARE",
    "DEFAULT_ENTRY_TOPIC",
    "DEFAULT_FOCUS_TOPIC",
    "DEFAULT_MALFORMED_SHARE",
    "DEFAULT_RATE",
    "DEFAULT_SEED",
    "DEFAULT_UNKNOWN_CUSTOMER_SHARE",
    "ENTRY",
    "ENTRY_EVENT_TYPE",
    "FLUSH_TIMEOUT_S",
    "FOCUS",
    "FOCUS_EVENT_TYPE",
    "MALFORMED_KINDS",
    "MAX_FOCUS_PER_VISIT",
    "METADATA_TIMEOUT_S",
    "StoreTraffic",
    "TrafficConfig",
    "TrafficEvent",
    "TrafficSummary",
    "encode",
    "format_timestamp",
    "main",
    "produce",
]
