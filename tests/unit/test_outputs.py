"""The worker's output producer without a broker: back-pressure, flush outcomes, config."""

from __future__ import annotations

from typing import Any

import pytest

from config.runtime import RuntimeConfig
from streams.outputs import Outputs, OutputsLost, OutputsPending, output_config


class FakeProducer:
    """librdkafka's surface: a queue of ``room`` records, flush leaves ``stuck`` behind."""

    def __init__(self, conf: dict[str, Any], **kw: Any) -> None:
        self.conf = conf
        self.queued: list[tuple[str, bytes, bytes | None]] = []
        self.room = 2
        self.stuck = 0
        self.polls = 0

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if len(self.queued) >= self.room:
            raise BufferError("Local: Queue full")
        self.queued.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        self.room += 1  # deliveries drain the queue
        return 0

    def flush(self, timeout: float) -> int:
        return self.stuck


def make() -> tuple[Outputs, FakeProducer]:
    made: list[FakeProducer] = []

    def factory(conf: dict[str, Any], **kw: Any) -> FakeProducer:
        made.append(FakeProducer(conf, **kw))
        return made[0]

    out = Outputs(RuntimeConfig(), factory=factory)
    return out, made[0]


def test_a_full_queue_waits_for_room_and_drops_nothing() -> None:
    # catches: a BufferError escaping (the agent crashes) or a record silently dropped
    out, fake = make()
    for i in range(5):
        out.send("signals", b"BTC", b"%d" % i)
    assert [v for _, v, _ in fake.queued] == [b"0", b"1", b"2", b"3", b"4"]
    assert fake.polls == 3 and out.sent == 5


def test_flush_tells_in_flight_from_lost() -> None:
    out, fake = make()
    out.flush()  # everything delivered
    fake.stuck = 2
    with pytest.raises(OutputsPending, match="2 output record"):
        out.flush()
    fake.stuck = 0
    out.lost.append("signals: Local: Message timed out")
    with pytest.raises(OutputsLost, match="timed out"):
        out.flush()


def test_outputs_keep_the_partitions_and_durability_of_the_old_producer() -> None:
    # catches: librdkafka's default crc32 partitioner (a symbol's signals would move to
    # another partition than Faust/aiokafka chose), acks=1, or a linger that costs latency
    conf = output_config(RuntimeConfig())
    assert conf["partitioner"] == "murmur2_random"
    assert conf["acks"] == "all" and conf["enable.idempotence"] is True
    assert conf["linger.ms"] <= 1
