"""python -m pipeline --help lists the service's settings with their environment variables."""

from __future__ import annotations

from pipeline.__main__ import run


def test_help_lists_every_setting_and_exits_0(capsys):
    assert run(['--help']) == 0

    shown = capsys.readouterr().out
    assert '--entry_topic' in shown and 'ENTRY_EVENT_TOPIC_NAME' in shown
    assert '--kafka_io' in shown
