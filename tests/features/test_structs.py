"""The output records may skip the cyclic garbage collector only while they cannot form a cycle."""

import gc

import msgspec
import pytest

from features import structs as records

RECORDS = [records.ContextTurn, records.TranscriptEntry, records.Turn, records.TurnPair, records.Conversation]
_IMMUTABLE_LEAVES = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
    msgspec.inspect.LiteralType,
)


def _mutable_parts(info: msgspec.inspect.Type) -> list[str]:
    """Types inside `info` through which a reference cycle could run."""
    if isinstance(info, _IMMUTABLE_LEAVES):
        return []
    if isinstance(info, msgspec.inspect.UnionType):
        return [part for member in info.types for part in _mutable_parts(member)]
    if isinstance(info, msgspec.inspect.VarTupleType):
        return _mutable_parts(info.item_type)
    if isinstance(info, msgspec.inspect.StructType) and info.cls in RECORDS:
        return []  # checked on its own below
    return [repr(info)]


@pytest.mark.parametrize("record", RECORDS, ids=lambda cls: cls.__name__)
def test_untracked_records_are_frozen_and_hold_only_immutable_values(record):
    info = msgspec.inspect.type_info(record)
    assert record.__struct_config__.frozen
    assert not record.__struct_config__.gc
    mutable = {field.name: _mutable_parts(field.type) for field in info.fields}
    assert {name: parts for name, parts in mutable.items() if parts} == {}


def test_a_record_is_not_tracked_by_the_collector():
    assert not gc.is_tracked(records.ContextTurn(role="bot", text="hello"))
