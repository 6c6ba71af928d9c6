"""A local single-node Apache Kafka broker (KRaft mode), run from Maven Central jars.

See :mod:`standins.kafka.broker`; the command line is ``python -m standins.kafka``.
"""
