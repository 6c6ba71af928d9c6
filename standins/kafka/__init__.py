"""A local single-node Apache Kafka broker (KRaft mode), run from Maven Central jars.

The command line is ``python -m standins.kafka`` (:mod:`standins.kafka.__main__`). Modules:

- :mod:`standins.kafka.broker`: :class:`KafkaBroker`, which starts, reuses and stops the broker
  (and re-exports the public names of the modules below);
- :mod:`standins.kafka.config`: the broker's ``server.properties`` and :class:`ScramUser`;
- :mod:`standins.kafka.tls`: the SASL_SSL listener's self-signed certificates;
- :mod:`standins.kafka.topics`: :func:`create_topics` and the admin client;
- :mod:`standins.kafka.jvm`: the paths under ``<repo>/.local``, the jars and the java command;
- :mod:`standins.kafka.errors`: :class:`BrokerError`.
"""
