"""`dataset.backfill` without a broker: reading recorded deliveries (the whole run: tests/cli)."""

import pytest

from dataset.backfill import messages_from_delivery
from messagehooks.errors import MalformedLine, MessageHooksError
from messagehooks.settings import load_settings


@pytest.mark.parametrize("raw", [b"[1]", b"{oops", b"\n", b'{"body": 1}'])
def test_backfill_names_the_line_of_a_malformed_delivery(raw):
    with pytest.raises(MalformedLine, match=r"^line 3: ") as info:
        messages_from_delivery(raw, load_settings(), line=3)
    assert isinstance(info.value, MessageHooksError)
    assert isinstance(info.value, ValueError)  # as backfill raised before the tree had it
