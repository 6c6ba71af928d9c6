"""The Java side of ``--kafka_io=xlang``: the pom its jars are fetched with, the harness
launcher script with its provision helper, and ``runtime`` (fetching, checking, starting)."""
