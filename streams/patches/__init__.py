"""Every use of Faust, mode and aiokafka private code, in one package that checks their versions.

Importing it fails with `UnsupportedVersion` unless the installed releases are the ones the
patches were written for (`pins.PINNED`, the pins in pyproject.toml). Each fix names the
upstream behaviour it works around, so it can be dropped when upstream fixes it:

- `faust_fixes`: start-up races of Faust/mode/aiokafka, on any broker;
- `tansu`: the embedded Tansu broker's differences, on that engine only;
- `transactions`: Faust's exactly_once (Apache Kafka only);
- `internals`: private state the agents read or set (no class changed).

Which fix is needed on which engine is shown by tests/integration/test_kafka_compat.py (table
in docs/engines.md).
"""

from collections.abc import Callable

from streams.patches.faust_fixes import (
    patch_create_topic_waits_for_metadata,
    patch_fetch_only_active_partitions,
    patch_flow_control_resume,
    patch_recovery_seek_before_resume,
)
from streams.patches.internals import committed_offsets, track_table_topic, use_serializers
from streams.patches.pins import PINNED, check_versions
from streams.patches.tansu import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    fetch_highwaters,
    patch_changelog_highwaters,
    patch_fetch_max_wait,
    patch_leave_group_generation_zero,
)
from streams.patches.transactions import (
    apply_transaction_fixes,
    commit_transactions,
    serialize_commits,
    transaction_source,
)

__all__ = [
    "EMBEDDED_FETCH_MAX_WAIT_MS",
    "PINNED",
    "apply_faust_fixes",
    "apply_transaction_fixes",
    "check_versions",
    "commit_transactions",
    "committed_offsets",
    "faust_fixes",
    "fetch_highwaters",
    "patch_changelog_highwaters",
    "patch_create_topic_waits_for_metadata",
    "patch_fetch_max_wait",
    "patch_fetch_only_active_partitions",
    "patch_flow_control_resume",
    "patch_leave_group_generation_zero",
    "patch_recovery_seek_before_resume",
    "serialize_commits",
    "track_table_topic",
    "transaction_source",
    "use_serializers",
]


def apply_faust_fixes(*, embedded: bool, transactions: bool = False) -> None:
    """Patch Faust and aiokafka in this process before the Faust app starts (idempotent).

    Args:
        embedded: True on the embedded Tansu broker; adds the Tansu-only fixes to the Faust
            start-up race fix, which applies to any broker.
        transactions: True with ``processing_guarantee="exactly_once"`` (Apache Kafka only).
    """
    for fix in faust_fixes(embedded=embedded):
        fix()
    if transactions:
        apply_transaction_fixes()


def faust_fixes(*, embedded: bool) -> tuple[Callable[[], None], ...]:
    """The patches `apply_faust_fixes` installs: the Faust/aiokafka ones, plus Tansu's if `embedded`."""
    any_broker = (
        patch_recovery_seek_before_resume,
        patch_flow_control_resume,
        patch_fetch_only_active_partitions,
        patch_create_topic_waits_for_metadata,
    )
    tansu_only = (patch_leave_group_generation_zero, patch_changelog_highwaters, patch_fetch_max_wait)
    return any_broker + tansu_only if embedded else any_broker
