from ingest.spool import Spool
from messagehooks.kafka import ProducerRecord


def test_spool_keeps_order_and_survives_reopening(tmp_path):
    path = tmp_path / "spool" / "s.sqlite3"
    spool = Spool(path)
    spool.append([ProducerRecord("t", b"k1", b"v1"), ProducerRecord("t", None, b"v2")])
    spool.append([ProducerRecord("u", b"k3", b"v3")])
    spool.close()
    reopened = Spool(path)
    assert reopened.depth == 3
    batch = reopened.peek(2)
    assert [r.value for _, r in batch] == [b"v1", b"v2"]
    assert batch[1][1].key is None
    reopened.remove_through(batch[-1][0])
    assert reopened.depth == 1
    assert [r for _, r in reopened.peek(10)] == [ProducerRecord("u", b"k3", b"v3")]
    reopened.close()
