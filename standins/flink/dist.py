"""What the local Flink cluster runs from: its files under ``<repo>/.local``, its jars and the JVM.

The jars come from PyPI's sdist of ``apache-flink-libraries`` at the version that
``standins/flink/requirements.txt`` pins: :func:`fetch_distribution` downloads it once with
``pip download`` into a staging directory, keeps ``deps/lib/*.jar`` and
``deps/bin/bash-java-utils.jar``, drops the rest (the archive too) and stamps the result with the
pinned requirement, so it runs again only when the pin changes. :func:`java_command` runs those
jars on the JVM found through ``JAVA_HOME`` or ``PATH`` (Java 17 or newer), with the
``--add-opens``/``--add-exports`` flags that the ``config.yaml`` inside flink-dist names in
``env.java.opts.all``; :func:`resource_params` asks Flink's ``BashJavaUtils`` for the memory flags
and dynamic properties of a JobManager or TaskManager, as Flink's own start scripts do.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import yaml

from standins.flink.errors import FlinkError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().with_name("requirements.txt")
LOG4J_CONFIG = Path(__file__).resolve().with_name("log4j2.properties")
FLINK_HOME = REPO_ROOT / ".local" / "flink"
DIST_DIR = FLINK_HOME / "dist"
DEFAULT_LOG_DIR = REPO_ROOT / ".local" / "logs"

STAMP_FILE = ".requirement"
BASH_JAVA_UTILS_JAR = "bash-java-utils.jar"
BASH_JAVA_UTILS_MAIN = "org.apache.flink.runtime.util.bash.BashJavaUtils"
BASH_JAVA_UTILS_PREFIX = "BASH_JAVA_UTILS_EXEC_RESULT:"
COMMON_JVM_OPTIONS = ("-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")


def pinned_requirement(requirements: Path = REQUIREMENTS) -> str:
    """The one requirement line (``apache-flink-libraries==X``) of ``requirements``."""
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line
    raise FlinkError(f"{requirements} names no requirement")


def fetch_distribution(dist_dir: Path = DIST_DIR) -> Path:
    """Put Flink's jars into ``dist_dir/lib`` and ``dist_dir/bin``, unless they are already there.

    Downloads and unpacks into ``<dist_dir>.partial``, which replaces ``dist_dir`` only on
    success, so an interrupted fetch never leaves a half-filled classpath behind.
    """
    requirement = pinned_requirement()
    if _current(dist_dir, requirement):
        return dist_dir
    staging = dist_dir.with_name(dist_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "download").mkdir(parents=True)
    log.info("downloading %s (about 230 MB, once) into %s", requirement, dist_dir)
    archive = _download(requirement, staging / "download")
    _unpack_jars(archive, staging)
    shutil.rmtree(staging / "download")
    (staging / STAMP_FILE).write_text(requirement + "\n")
    shutil.rmtree(dist_dir, ignore_errors=True)
    staging.rename(dist_dir)
    return dist_dir


def _current(dist_dir: Path, requirement: str) -> bool:
    """Whether ``dist_dir`` holds the jars of ``requirement``."""
    stamp = dist_dir / STAMP_FILE
    return (
        stamp.is_file()
        and stamp.read_text().strip() == requirement
        and (dist_dir / "bin" / BASH_JAVA_UTILS_JAR).is_file()
        and any((dist_dir / "lib").glob("flink-dist-*.jar"))
    )


def _download(requirement: str, into: Path) -> Path:
    """``pip download`` the sdist of ``requirement`` into ``into``; return the archive."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(into),
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(into.glob("*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise FlinkError(
            f"downloading {requirement} failed (pip exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return archives[0]


def _unpack_jars(archive: Path, into: Path) -> None:
    """Extract the lib jars and bash-java-utils.jar of the sdist ``archive`` into ``into``."""
    (into / "lib").mkdir()
    (into / "bin").mkdir()
    with tarfile.open(archive) as sdist:
        for member in sdist:
            target = _jar_target(PurePosixPath(member.name))
            if member.isfile() and target is not None:
                source = sdist.extractfile(member)
                assert source is not None  # a regular file
                with source, (into / target).open("wb") as output:
                    shutil.copyfileobj(source, output, length=1 << 20)
    if not (into / "bin" / BASH_JAVA_UTILS_JAR).is_file() or not any(
        (into / "lib").glob("flink-dist-*.jar")
    ):
        raise FlinkError(f"{archive.name} holds no flink-dist jar or no {BASH_JAVA_UTILS_JAR}")


def _jar_target(name: PurePosixPath) -> str | None:
    """Where a member of the sdist goes (``lib/x.jar`` or ``bin/...``), or None to skip it.

    The sdist keeps the jars in ``deps/lib`` and ``deps/bin``; a built package has them in
    ``pyflink/lib`` and ``pyflink/bin``. Both are accepted.
    """
    parts = name.parts
    if name.suffix != ".jar" or len(parts) < 3 or parts[-3] not in ("deps", "pyflink"):
        return None
    if parts[-2] == "lib":
        return f"lib/{name.name}"
    if parts[-2] == "bin" and name.name == BASH_JAVA_UTILS_JAR:
        return f"bin/{name.name}"
    return None


def java() -> str:
    """The ``java`` of ``$JAVA_HOME``, else the one on ``PATH``."""
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


def classpath(dist_dir: Path) -> str:
    """Flink's lib jars, sorted, with flink-dist last (as Flink's ``config.sh`` builds it)."""
    jars = sorted((dist_dir / "lib").glob("*.jar"))
    dist = [jar for jar in jars if jar.name.startswith("flink-dist")]
    others = [jar for jar in jars if not jar.name.startswith("flink-dist")]
    return os.pathsep.join(str(jar) for jar in [*others, *dist])


def flink_dist_jar(dist_dir: Path) -> Path:
    """The flink-dist jar of ``dist_dir``."""
    jars = sorted((dist_dir / "lib").glob("flink-dist-*.jar"))
    if not jars:
        raise FlinkError(f"no flink-dist jar in {dist_dir / 'lib'}")
    return jars[0]


def java_module_options(dist_dir: Path) -> list[str]:
    """The ``env.java.opts.all`` of flink-dist's bundled ``config.yaml`` (Java 17's flags)."""
    with zipfile.ZipFile(flink_dist_jar(dist_dir)) as jar:
        config = yaml.safe_load(jar.read("config.yaml"))
    try:
        options = config["env"]["java"]["opts"]["all"]
    except (KeyError, TypeError) as error:
        raise FlinkError("flink-dist's config.yaml has no env.java.opts.all") from error
    return shlex.split(str(options))


def resource_params(dist_dir: Path, conf_dir: Path, role: str) -> tuple[list[str], list[str]]:
    """The JVM memory flags and the ``-D key=value`` arguments of a JobManager or TaskManager.

    Args:
        role: ``"JM"`` or ``"TM"`` (``BashJavaUtils GET_JM_RESOURCE_PARAMS`` or ``..._TM_...``).

    Returns:
        The JVM flags (``-Xmx...``) and the dynamic properties as separate arguments
        (``["-D", "key=value", ...]``), from ``BashJavaUtils``'s two result lines.
    """
    command = [
        java(),
        "-cp",
        os.pathsep.join(
            [str(dist_dir / "bin" / BASH_JAVA_UTILS_JAR), str(flink_dist_jar(dist_dir))]
        ),
        BASH_JAVA_UTILS_MAIN,
        f"GET_{role}_RESOURCE_PARAMS",
        "--configDir",
        str(conf_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [
        line[len(BASH_JAVA_UTILS_PREFIX) :]
        for line in result.stdout.splitlines()
        if line.startswith(BASH_JAVA_UTILS_PREFIX)
    ]
    if result.returncode != 0 or len(lines) < 2:
        raise FlinkError(
            f"BashJavaUtils GET_{role}_RESOURCE_PARAMS failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return shlex.split(lines[-2]), shlex.split(lines[-1])


def java_command(dist_dir: Path, jvm_options: list[str], log_file: Path) -> list[str]:
    """``java`` with ``jvm_options``, Java 17's module flags, logging to ``log_file``, the classpath."""
    return [
        java(),
        *COMMON_JVM_OPTIONS,
        *jvm_options,
        *java_module_options(dist_dir),
        f"-Dlog.file={log_file}",
        f"-Dlog4j.configurationFile=file:{LOG4J_CONFIG}",
        "-cp",
        classpath(dist_dir),
    ]
