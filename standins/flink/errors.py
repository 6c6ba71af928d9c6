"""The one error of the Flink stand-in, raised by every module of :mod:`standins.flink`."""


class FlinkError(RuntimeError):
    """The local Flink cluster could not be fetched, started, stopped or queried."""
