"""The Kafka edge as store devices write to it: librdkafka producers (confluent-kafka, a client
the pipeline does not use) with every compression codec, transactions committed and aborted,
and a batch corrupted on the broker's disk, against the real broker and the pipeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from confluent_kafka import Producer

from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.outcomes import (
    Sent,
    as_dead_letter,
    as_prediction,
    assert_counted,
    expected_outcome,
    read_all,
    wait_for_commits,
)
from tests.integration.scenario import IndependentModel, Message, Scenario, _event

pytestmark = pytest.mark.integration
CODECS = ('none', 'gzip', 'snappy', 'lz4', 'zstd')
OUTPUT_TIMEOUT_S = 90


def visits(customers: range) -> list[Message]:
    """An entry, then the focus events, of each customer."""
    scenario = Scenario()
    messages = []
    for customer in customers:
        messages.append(_event('entry', customer))
        messages += [_event('focus', customer, d) for d in scenario.departments(customer)]
    return messages


class LibrdkafkaProducer:
    """confluent-kafka's producer, each message's position taken from its delivery report."""

    def __init__(self, bootstrap: str, topics: dict[str, str], **config: object):
        self._producer = Producer({'bootstrap.servers': bootstrap, 'linger.ms': 20, **config})
        self._topics = topics

    def send(self, messages: list[Message], partition: Optional[int] = None) -> Sent:
        sent: Sent = []

        def delivered(message: Message) -> Callable:
            def report(error, record) -> None:
                assert error is None, error
                sent.append((message, f'{record.topic()}/{record.partition()}/{record.offset()}'))

            return report

        for message in messages:
            extra = {} if partition is None else {'partition': partition}
            self._producer.produce(
                self._topics[message.topic_kind],
                key=message.key,
                value=message.value,
                on_delivery=delivered(message),
                **extra,
            )
        self._producer.flush(30)
        assert len(sent) == len(messages)
        return sent

    def transaction(self, messages: list[Message], commit: bool) -> Sent:
        self._producer.begin_transaction()
        sent = self.send(messages)
        if commit:
            self._producer.commit_transaction(30)
        else:
            self._producer.abort_transaction(30)
        return sent

    def init_transactions(self) -> None:
        self._producer.init_transactions(30)


def outputs(kafka, topics: dict[str, str], predictions: int, letters: int) -> tuple[set, set]:
    written = read_all(
        kafka.bootstrap_servers, topics['predictions'], predictions, OUTPUT_TIMEOUT_S
    )
    dead = read_all(kafka.bootstrap_servers, topics['deadletters'], letters, 20 if letters else 5)
    return {as_prediction(m) for m in written}, dead


def test_every_codec_on_both_topics_is_read_exactly(kafka, services, topics, tmp_path: Path):
    """One librdkafka producer per codec, batching (linger) the entries and focus events of
    ten customers each on both input topics: every focus event scored, nothing else."""
    env = pipeline_environment(kafka, services, topics, tmp_path / 'metrics.json')
    sent: Sent = []
    with running_pipeline(env, tmp_path / 'pipeline.log'):
        for number, codec in enumerate(CODECS):
            producer = LibrdkafkaProducer(
                kafka.bootstrap_servers, topics, **{'compression.type': codec}
            )
            sent += producer.send(visits(range(1 + 10 * number, 11 + 10 * number)))
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        predictions, letters = outputs(kafka, topics, len(expected.predictions), 0)
        left = wait_for_commits(kafka.bootstrap_servers, env['GROUP_ID'], inputs(topics))
    assert predictions == set(expected.predictions)
    assert letters == []
    assert left == {}


def inputs(topics: dict[str, str]) -> list[str]:
    return [topics['entry'], topics['focus']]


def test_aborted_transactions_are_never_scored_and_commits_pass_their_markers(
    kafka, services, topics, tmp_path: Path
):
    """A transactional producer: commit, abort, commit. Only the committed focus events are
    scored; the group's commits reach the end of every partition (markers and aborted
    records end as gaps)."""
    env = pipeline_environment(kafka, services, topics, tmp_path / 'metrics.json')
    producer = LibrdkafkaProducer(
        kafka.bootstrap_servers, topics, **{'transactional.id': f'store-{topics["entry"]}'}
    )
    producer.init_transactions()
    with running_pipeline(env, tmp_path / 'pipeline.log'):
        first = producer.transaction(visits(range(1, 11)), commit=True)
        aborted = producer.transaction(visits(range(11, 21)), commit=False)
        last = producer.transaction(visits(range(21, 31)), commit=True)
        expected = expected_outcome(IndependentModel(services.db_path), first + last)
        predictions, letters = outputs(kafka, topics, len(expected.predictions), 0)
        left = wait_for_commits(kafka.bootstrap_servers, env['GROUP_ID'], inputs(topics))
    aborted_positions = {position for _, position in aborted}
    assert predictions == set(expected.predictions)
    assert not {p[0] for p in predictions} & aborted_positions
    assert letters == []
    assert left == {}


def log_dir(kafka) -> Path:
    """The running broker's log directory, from the configuration it was started with (a
    broker reused by a later fixture keeps the first one's)."""
    for line in kafka.config_file.read_text().splitlines():
        if line.startswith('log.dirs='):
            return Path(line.split('=', 1)[1])
    raise AssertionError(f'no log.dirs in {kafka.config_file}')


def corrupt_batch_of(kafka, topic: str, partition: int, value: bytes) -> None:
    """Flips a byte inside ``value`` where the broker keeps it on disk: the batch's CRC no
    longer matches (as after a disk or network fault), which the broker does not check when
    it serves a fetch."""
    segment = next((log_dir(kafka) / f'{topic}-{partition}').glob('*.log'))
    data = bytearray(segment.read_bytes())
    at = data.index(value) + len(value) // 2
    data[at] ^= 0xFF
    with open(segment, 'r+b') as log:
        log.seek(at)
        log.write(bytes(data[at : at + 1]))


def test_a_corrupt_batch_is_a_dead_letter_and_the_read_goes_on(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    """A batch of five focus events on focus partition 0, corrupted on the broker's disk,
    between good events on every partition: the batch is one undecodable_batch dead letter
    naming its range, every other focus event is scored, the job keeps running, and the
    group's commits pass the batch."""
    producer = LibrdkafkaProducer(kafka.bootstrap_servers, topics)
    before = producer.send(visits(range(1, 11)))
    batch = [_event('focus', customer, 1) for customer in range(11, 16)]
    bad = producer.send(batch, partition=0)
    corrupt_batch_of(kafka, topics['focus'], 0, batch[2].value)
    env = pipeline_environment(kafka, services, topics, tmp_path / 'metrics.json')
    with running_pipeline(env, tmp_path / 'pipeline.log') as process:
        after = producer.send(visits(range(16, 26)))
        expected = expected_outcome(IndependentModel(services.db_path), before + after)
        predictions, letters = outputs(kafka, topics, len(expected.predictions), 1)
        left = wait_for_commits(kafka.bootstrap_servers, env['GROUP_ID'], inputs(topics))
        time.sleep(2)  # a metrics report
        assert process.poll() is None, 'the pipeline stopped'
    offsets = sorted(int(position.rsplit('/', 1)[1]) for _, position in bad)
    assert predictions == set(expected.predictions)
    assert [as_dead_letter(letter) for letter in letters] == [
        ('undecodable_batch', f'{topics["focus"]}/0/{offsets[0]}')
    ]
    assert letters[0]['source_end_offset'] == offsets[-1] + 1
    assert 'CorruptRecordError' in letters[0]['detail']
    assert left == {}
    metrics = read_metrics(tmp_path / 'metrics.json')
    assert_counted(metrics, 'events.undecodable_batches', 1)
    fault_figures['undecodable_range'] = f'{offsets[0]}-{offsets[-1]}'
