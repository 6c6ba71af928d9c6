"""The one error of the Kafka stand-in, raised by every module of :mod:`standins.kafka`."""


class BrokerError(RuntimeError):
    """The local Kafka broker could not be fetched, started, stopped or used."""
