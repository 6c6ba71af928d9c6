"""Building Prism, Beam's Go runner, from the Beam Go module, with the fixes it needs here.

Prism's release binaries come from GitHub, which these machines cannot reach, so the
binary is built from the Beam Go module of the SDK's own version, fetched through the Go
module proxy (``go mod download``), with the fixes below applied to a copy of its source.

The one fix: Prism's bundle loop (``stage.Execute``, Beam 2.73 to 2.77) selects on the
channel that says "all data of the bundle arrived" after it was closed, and a closed
channel is always ready, so the loop spins until the SDK's answer comes. The window between
the SDK's last data and its answer is short but comes with every bundle, and a stage without
outputs spins for the whole bundle: Prism burned 0.19 cores with no traffic at all and
0.6 cores at 50 focus events/s (perf: 40 % of its samples in ``runtime.selectgo`` under
``stage.Execute``, most of the rest in the channel locks). Fixed (stop selecting the channel
once it fired): 0.05 cores idle, 0.1 at 50/s, and the SDK harness gets the core back.
See docs/runners.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

_LOGGER = logging.getLogger(__name__)
BEAM_GO_MODULE = 'github.com/apache/beam/sdks/v2'


@dataclasses.dataclass(frozen=True)
class SourceFix:
    """A replacement of one exact text, found once, in one file of the Beam Go module."""

    path: str
    before: str
    after: str


FIXES = (
    SourceFix(
        path='go/pkg/beam/runners/prism/internal/stage.go',
        before='\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n',
        after=(
            '\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n'
            '\t\t\tdataReady = nil // closed, so always ready: selecting it again spins\n'
        ),
    ),
)


def build_name(beam_version: str) -> str:
    """The build's cache folder name: the version and a digest of the fixes, so that a change
    of either builds anew."""
    digest = hashlib.sha256(repr(FIXES).encode()).hexdigest()[:8]
    return f'v{beam_version}-fixes-{digest}'


def build_prism(beam_version: str, binary: Path) -> None:
    """Builds Prism ``beam_version`` into ``binary``, with every fix of ``FIXES`` that applies
    (a fix whose text is not there, say in a later Beam that changed the code, is skipped
    with a warning)."""
    module = _downloaded_module(beam_version)
    with tempfile.TemporaryDirectory(prefix='prism-src-') as scratch:
        source = Path(scratch) / 'sdks'
        shutil.copytree(module, source, copy_function=shutil.copy)
        for fix in FIXES:
            _apply(fix, source)
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(['go', 'build', '-o', str(binary), './go/cmd/prism'], cwd=source, check=True)


def _downloaded_module(beam_version: str) -> Path:
    """The Beam Go module's source in the Go module cache (read-only), downloaded if absent."""
    found = subprocess.run(
        ['go', 'mod', 'download', '-json', f'{BEAM_GO_MODULE}@v{beam_version}'],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(found.stdout)['Dir'])


def _apply(fix: SourceFix, source: Path) -> None:
    target = source / fix.path
    target.chmod(target.stat().st_mode | stat.S_IWUSR)
    text = target.read_text()
    if text.count(fix.before) != 1:
        _LOGGER.warning('Prism fix for %s does not apply to this Beam version: skipped', fix.path)
        return
    target.write_text(text.replace(fix.before, fix.after))
    _LOGGER.info('Prism fix applied to %s', fix.path)
