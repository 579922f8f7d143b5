"""The dataset sink: Kafka topics -> Delta tables, exactly once (the protocol: docs/dataset.md).

A plain aiokafka consumer (no Faust: it keeps no state worth a changelog) reads `messages`,
`turn-pairs`, `conversations` and `dead-letter`, buffers rows per table and commits each table's
buffer as one Delta version every `sink_flush_interval` seconds (or at `sink_flush_rows`), in a
thread. Each commit also records, as Delta application transactions, the next Kafka offset of
every partition it covers; on (re)assignment the sink seeks to those offsets, not to Kafka's
committed ones. Rows are also deduplicated by their table's id, against the table itself, so a
redelivered message or a pair re-emitted after a worker crash is written once. Right after a
table's commit, the sink also compacts or vacuums that table when its schedule says so
(dataset/upkeep.py), so its small files do not pile up.

One module per concern:
- `consumer`: `DatasetSink`, the consumer and its run loop (fetch, drain, stop), `run_sink`;
- `positions`: contiguous reading (the next offset expected per partition; stale fetches);
- `buffers`: records decoded, masked and deduplicated into each table's buffer;
- `key_index`: the ids each table holds, read from Delta off the event loop;
- `commits`: a buffer committed as one Delta version, then the table's upkeep;
- `offsets`: the offsets recorded in the Delta log, per topic incarnation, and the resume from them;
- `listener`: what a rebalance does (commit before revoking, resume from the log on assignment).
"""

from dataset.sink.consumer import DRAIN_SECONDS, DatasetSink, run_sink
from dataset.sink.stats import SinkStats

__all__ = ["DRAIN_SECONDS", "DatasetSink", "SinkStats", "run_sink"]
