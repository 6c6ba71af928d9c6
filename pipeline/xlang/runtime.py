"""The Java runtime of ``--kafka_io=xlang``: jars, launcher jar, expansion service.

In:  ``pipeline/xlang/pom.xml`` (Beam's expansion service, KafkaIO and Java SDK harness,
     pinned) and the harness launcher ``pipeline/xlang/java_harness.sh``.
Out: ``fetch_xlang_jars`` puts the jars into ``.local/xlang/lib`` (git-ignored) and builds
     ``.local/xlang/kafka-expansion-service.jar``, a manifest-only jar (Main-Class: Beam's
     ExpansionService, Class-Path: the jars) that ``JavaJarExpansionService`` can start;
     ``missing_runtime`` says what stops xlang from running here; ``expansion_service``
     is the SDK-managed expansion service whose transforms run in a PROCESS environment:
     the launcher script, started by the runner, no Docker.
State: the files under ``.local/xlang``, current while the pom's hash matches their stamp.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Optional

from apache_beam.transforms.external import JavaJarExpansionService

from pipeline.maven import STAMP_FILE, fetch_maven_jars

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
POM = HERE / 'pom.xml'
HARNESS_SCRIPT = HERE / 'java_harness.sh'
XLANG_HOME = REPO / '.local' / 'xlang'
LIB_DIR = XLANG_HOME / 'lib'
LAUNCHER_JAR = XLANG_HOME / 'kafka-expansion-service.jar'
EXPANSION_MAIN = 'org.apache.beam.sdk.expansion.service.ExpansionService'
BOOTSTRAP_COMMAND = 'scripts/bootstrap.sh'


def fetch_xlang_jars() -> Path:
    """Fetches the jars of the pom and builds the launcher jar, each once per pom change."""
    fetch_maven_jars(POM, LIB_DIR)
    stamp = LIB_DIR / STAMP_FILE
    if not LAUNCHER_JAR.is_file() or LAUNCHER_JAR.stat().st_mtime < stamp.stat().st_mtime:
        _write_launcher_jar(sorted(LIB_DIR.glob('*.jar')))
    return LAUNCHER_JAR


def _write_launcher_jar(jars: list[Path]) -> None:
    """A jar holding only a manifest: the ExpansionService as Main-Class, ``jars`` as Class-Path."""
    class_path = ' '.join(jar.relative_to(XLANG_HOME).as_posix() for jar in jars)
    manifest = f'Manifest-Version: 1.0\nMain-Class: {EXPANSION_MAIN}\nClass-Path: {class_path}\n'
    lines = manifest.splitlines()
    # A manifest line holds at most 72 bytes; longer ones continue after a leading space.
    wrapped = [chunk for line in lines for chunk in _manifest_chunks(line)]
    partial = LAUNCHER_JAR.with_suffix('.partial')
    with zipfile.ZipFile(partial, 'w') as jar:
        jar.writestr('META-INF/MANIFEST.MF', '\r\n'.join(wrapped) + '\r\n')
    partial.replace(LAUNCHER_JAR)


def _manifest_chunks(line: str, width: int = 70) -> list[str]:
    head, rest = line[:width], line[width:]
    return [head] + [' ' + rest[i : i + width - 1] for i in range(0, len(rest), width - 1)]


def missing_runtime() -> Optional[str]:
    """Why xlang cannot run here (no jars, no Java), or None."""
    if not (LAUNCHER_JAR.is_file() and any(LIB_DIR.glob('*.jar'))):
        return (
            f'the Java KafkaIO jars are missing from {LIB_DIR}: run {BOOTSTRAP_COMMAND} '
            '(fetches them with Maven, once)'
        )
    if shutil.which('java') is None:
        return 'java is not on PATH: the expansion service and the Java SDK harness need Java 17'
    return None


def expansion_service(deprecated_read: bool = False) -> JavaJarExpansionService:
    """The expansion service of the Java Kafka transforms, started by the SDK from the launcher
    jar when entered and stopped when left; its transforms run in the launcher script.

    ``deprecated_read`` (Flink): KafkaIO's read expands to its UnboundedSource, which Beam's
    Flink runner runs as a native Flink source in the TaskManager, its offsets in Flink's
    checkpoints, instead of a splittable DoFn (whose residuals Beam 2.73's released Flink
    job server keeps in state it never frees: apache/beam#27648). Only Flink (and Dataflow)
    run that primitive: Prism does not.
    """
    environment = {
        'command': str(HARNESS_SCRIPT),
        'env': {'XLANG_LIB': str(LIB_DIR), 'XLANG_PYTHON': sys.executable},
    }
    experiments = ['--experiments=use_deprecated_read'] if deprecated_read else []
    return JavaJarExpansionService(
        str(LAUNCHER_JAR),
        append_args=[
            '--defaultEnvironmentType=PROCESS',
            f'--defaultEnvironmentConfig={json.dumps(environment)}',
            *experiments,
        ],
    )
