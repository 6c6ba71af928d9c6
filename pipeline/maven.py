"""Jars pinned by a pom, fetched with Maven once per change of that pom.

In:  a pom used only for fetching (its dependencies, every version pinned).
Out: a directory holding the jars and a stamp with the pom's SHA-256.
State: that directory; it is current while the stamp matches the pom. Maven runs
offline first (the local repository may have everything), then online, into a staging
directory that replaces the old one only on success, so an interrupted fetch never
leaves a half-filled classpath behind.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

_LOGGER = logging.getLogger(__name__)
STAMP_FILE = '.pom.sha256'


class MavenError(RuntimeError):
    """Maven is missing, or could not fetch the jars."""


def fetch_maven_jars(pom: Path, lib_dir: Path) -> Path:
    """Puts the dependencies of ``pom`` into ``lib_dir``, unless they are already there."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if jars_current(lib_dir, digest):
        return lib_dir
    staging = lib_dir.with_name(lib_dir.name + '.partial')
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _LOGGER.info('fetching the jars of %s into %s', pom, lib_dir)
    _copy_dependencies(pom, staging)
    (staging / STAMP_FILE).write_text(digest + '\n')
    shutil.rmtree(lib_dir, ignore_errors=True)
    staging.rename(lib_dir)
    return lib_dir


def jars_current(lib_dir: Path, digest: str) -> bool:
    """Whether ``lib_dir`` holds jars fetched from the pom whose hash is ``digest``."""
    stamp = lib_dir / STAMP_FILE
    return stamp.is_file() and stamp.read_text().strip() == digest and any(lib_dir.glob('*.jar'))


def _copy_dependencies(pom: Path, output_dir: Path) -> None:
    """``mvn dependency:copy-dependencies`` on ``pom``, offline first, then online."""
    mvn = shutil.which('mvn')
    if mvn is None:
        raise MavenError(
            f'mvn (Apache Maven) is not on PATH; it is needed to fetch the jars of {pom}'
        )
    command = [
        mvn,
        '-q',
        '-B',
        '-f',
        str(pom),
        'dependency:copy-dependencies',
        f'-DoutputDirectory={output_dir}',
    ]
    if subprocess.run([*command, '-o'], capture_output=True, check=False).returncode == 0:
        return
    _LOGGER.info('not all jars of %s are in the local Maven repository; downloading them', pom)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MavenError(
            f'fetching the jars of {pom} failed (mvn exit {result.returncode}):\n'
            f'{result.stdout}{result.stderr}'
        )
