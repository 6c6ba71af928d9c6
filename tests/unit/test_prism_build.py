"""The source fixes Prism is built with (pipeline.prism): applied once, or skipped."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import prism
from pipeline.prism import SourceFix

LOOP = 'select {\n\t\tcase <-dataReady:\n\t\t\tdataFinished = true\n}\n'


def source_with(tmp_path: Path, text: str) -> Path:
    target = tmp_path / 'go' / 'stage.go'
    target.parent.mkdir(parents=True)
    target.write_text(text)
    target.chmod(0o444)  # as in the Go module cache
    return tmp_path


def test_the_busy_loop_fix_stops_selecting_the_closed_channel(tmp_path):
    fix = SourceFix('go/stage.go', prism.FIXES[0].before, prism.FIXES[0].after)
    source = source_with(tmp_path, LOOP)

    prism._apply(fix, source)

    fixed = (source / 'go' / 'stage.go').read_text()
    assert fixed.count('dataReady = nil') == 1
    assert fixed.index('dataFinished = true') < fixed.index('dataReady = nil')


def test_a_fix_whose_text_is_not_there_is_skipped_with_a_warning(tmp_path, caplog):
    source = source_with(tmp_path, 'select {}\n')

    with caplog.at_level(logging.WARNING):
        prism._apply(SourceFix('go/stage.go', 'case <-dataReady:', 'x'), source)

    assert (source / 'go' / 'stage.go').read_text() == 'select {}\n'
    assert 'does not apply' in caplog.text


def test_the_build_folder_names_the_version_and_changes_with_the_fixes(monkeypatch):
    name = prism.build_name('2.73.0')
    monkeypatch.setattr(prism, 'FIXES', ())

    assert name.startswith('v2.73.0-fixes-')
    assert prism.build_name('2.73.0') != name


def test_every_fix_applies_once_to_the_pinned_beams_prism_source():
    """A fix whose text drifted from the pinned Beam would be skipped with a warning only."""
    from apache_beam.version import __version__ as beam_version

    source = prism._downloaded_module(beam_version)

    for fix in prism.FIXES:
        assert (source / fix.path).read_text().count(fix.before) == 1, fix.path
