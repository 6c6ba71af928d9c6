"""What the local broker runs from: its files under ``<repo>/.local``, its jars and the JVM.

The Kafka jars that ``standins/kafka/pom.xml`` pins are fetched from Maven Central with
``mvn`` into ``<repo>/.local/kafka/lib`` (:func:`fetch_jars`); :func:`java_command` runs
them on the JVM found through ``JAVA_HOME`` or ``PATH`` (Java 17 or newer).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.maven import MavenError, fetch_maven_jars
from standins.kafka.errors import BrokerError

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).resolve().with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).resolve().with_name("log4j2.properties")
KAFKA_HOME = REPO_ROOT / ".local" / "kafka"
LIB_DIR = KAFKA_HOME / "lib"
DEFAULT_LOG_DIR = REPO_ROOT / ".local" / "logs"

JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")


def fetch_jars(lib_dir: Path = LIB_DIR) -> Path:
    """Put the broker's jars into ``lib_dir`` with Maven, unless they are already there
    (``pipeline.maven``: stamped with the pom's hash, replaced only on success)."""
    try:
        return fetch_maven_jars(POM, lib_dir)
    except MavenError as error:
        raise BrokerError(str(error)) from error


def java_command(lib_dir: Path) -> list[str]:
    """``java`` with the heap limits, the log4j2 config and the jars on the classpath."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else "java"
    return [
        java,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        str(lib_dir / "*"),
    ]
