"""Train / validation / test by chat, the same in every table, version and export.

A chat's split is a pure function of its id and a named seed: rows of one chat never straddle
train and test (no leak through a shared customer or conversation), a chat keeps its split as the
dataset grows (a new version never moves an old chat), and anyone holding the seed can recompute
it without the dataset. The ids hashed are the ones the tables store (masked where the PII policy
masks them), so every table agrees.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from messagehooks.errors import ConfigError
from messagehooks.settings import Settings, default
from messagehooks.variables import check_proportions

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")

DEFAULT_SEED: str = default("split_seed")
"""The declared default of MESSAGEHOOKS_SPLIT_SEED (messagehooks/settings.py)."""
DEFAULT_PROPORTIONS: tuple[float, float, float] = default("split_proportions")
"""The declared default of MESSAGEHOOKS_SPLIT_PROPORTIONS."""

_BUCKETS = 1 << 64


@dataclass(frozen=True, slots=True)
class SplitSpec:
    """The seed and the proportions of train, validation and test (they sum to 1)."""

    seed: str = DEFAULT_SEED
    proportions: tuple[float, float, float] = DEFAULT_PROPORTIONS

    def __post_init__(self) -> None:
        check_proportions(self.proportions)  # the one check, shared with the setting's converter
        if not self.seed:
            raise ConfigError("the split seed must not be empty")

    @classmethod
    def from_settings(cls, settings: Settings) -> "SplitSpec":
        """The split MESSAGEHOOKS_SPLIT_SEED and MESSAGEHOOKS_SPLIT_PROPORTIONS configure."""
        return cls(settings.split_seed, settings.split_proportions)

    @property
    def bounds(self) -> tuple[int, int]:
        """The hash values where train ends and where validation ends."""
        train, validation, _ = self.proportions
        return round(train * _BUCKETS), round((train + validation) * _BUCKETS)


def _bucket(chat_id: str, seed: str) -> int:
    digest = hashlib.blake2b(chat_id.encode(), digest_size=8, key=seed.encode()[:64]).digest()
    return int.from_bytes(digest, "big")


def split_of(chat_id: str, spec: SplitSpec = SplitSpec()) -> Split:
    """The split of `chat_id` under `spec`."""
    bucket = _bucket(chat_id, spec.seed)
    train_end, validation_end = spec.bounds
    if bucket < train_end:
        return "train"
    return "validation" if bucket < validation_end else "test"


def splits_of(chat_ids: Iterable[str], spec: SplitSpec = SplitSpec()) -> list[Split]:
    """The split of each id, in order (each distinct id hashed once: tables repeat chat ids)."""
    known: dict[str, Split] = {}
    return [known.get(chat_id) or known.setdefault(chat_id, split_of(chat_id, spec)) for chat_id in chat_ids]
