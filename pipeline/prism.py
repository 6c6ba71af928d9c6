"""Building Prism, Beam's Go runner, from the Beam Go module, with the fixes it needs here.

Prism's release binaries come from GitHub, which these machines cannot reach, so the
binary is built from the Beam Go module of the SDK's own version, fetched through the Go
module proxy (``go mod download``), with the fixes below applied to a copy of its source.

The first fix: Prism's bundle loop (``stage.Execute``, Beam 2.73 to 2.78) selects on the
channel that says "all data of the bundle arrived" after it was closed, and a closed
channel is always ready, so the loop spins until the SDK's answer comes. The window between
the SDK's last data and its answer is short but comes with every bundle, and a stage without
outputs spins for the whole bundle: Prism burned 0.19 cores with no traffic at all and
0.6 cores at 50 focus events/s (perf: 40 % of its samples in ``runtime.selectgo`` under
``stage.Execute``, most of the rest in the channel locks). Fixed (stop selecting the channel
once it fired): 0.05 cores idle, 0.1 at 50/s, and the SDK harness gets the core back.
See docs/runners.md.

The second fix: Prism's metrics store keeps the payload of a metric whose short id it does
not know yet in a map by short id, until the SDK describes the id. A second bundle that
ends before that answer (the SDF read's bundles often do) overwrites the first bundle's
payload, and that bundle's counts are lost for good: a CI run ended with
``contexts.fetched_on_entry`` at 13 after 20 entries (``sessions.contexts_stored`` 20),
and every counter a test waits on can lose its first bundles the same way. Fixed (keep
every pending payload, contribute each once its id is known). Beam 2.78 still has it.
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


_METRICS_GO = 'go/pkg/beam/runners/prism/internal/jobservices/metrics.go'

FIXES = (
    SourceFix(
        path='go/pkg/beam/runners/prism/internal/stage.go',
        before='\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n',
        after=(
            '\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n'
            '\t\t\tdataReady = nil // closed, so always ready: selecting it again spins\n'
        ),
    ),
    SourceFix(
        path=_METRICS_GO,
        before='\tunprocessedPayloads [2]map[string][]byte\n',
        after='\tunprocessedPayloads [2][]map[string][]byte // every pending payload, in arrival order\n',
    ),
    SourceFix(
        path=_METRICS_GO,
        before=(
            '\tfor d, payloads := range m.unprocessedPayloads {\n'
            '\t\tm.unprocessedPayloads[d] = nil\n'
            '\t\tm.contributeMetrics(durability(d), payloads)\n'
            '\t}\n'
        ),
        after=(
            '\tfor d, pending := range m.unprocessedPayloads {\n'
            '\t\tm.unprocessedPayloads[d] = nil\n'
            '\t\tfor _, payloads := range pending {\n'
            '\t\t\tm.contributeMetrics(durability(d), payloads)\n'
            '\t\t}\n'
            '\t}\n'
        ),
    ),
    SourceFix(
        path=_METRICS_GO,
        before=(
            '\tif m.unprocessedPayloads[d] == nil {\n'
            '\t\tm.unprocessedPayloads[d] = map[string][]byte{}\n'
            '\t}\n'
        ),
        after='',
    ),
    SourceFix(
        path=_METRICS_GO,
        before='\t\t\tm.unprocessedPayloads[d][short] = payload\n',
        after=(
            '\t\t\tm.unprocessedPayloads[d] = append(\n'
            '\t\t\t\tm.unprocessedPayloads[d], map[string][]byte{short: payload})\n'
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
