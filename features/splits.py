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

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")

DEFAULT_SEED = "messagehooks-splits-1"
DEFAULT_PROPORTIONS = (0.8, 0.1, 0.1)

_BUCKETS = 1 << 64


@dataclass(frozen=True, slots=True)
class SplitSpec:
    """The seed and the proportions of train, validation and test (they sum to 1)."""

    seed: str = DEFAULT_SEED
    proportions: tuple[float, float, float] = DEFAULT_PROPORTIONS

    def __post_init__(self) -> None:
        if len(self.proportions) != len(SPLITS) or any(share < 0 for share in self.proportions):
            raise ConfigError(f"split proportions must be three shares >= 0, got {self.proportions}")
        if abs(sum(self.proportions) - 1.0) > 1e-9:
            raise ConfigError(
                f"split proportions must sum to 1, got {self.proportions} = {sum(self.proportions)}"
            )
        if not self.seed:
            raise ConfigError("the split seed must not be empty")

    @property
    def bounds(self) -> tuple[int, int]:
        """The hash values where train ends and where validation ends."""
        train, validation, _ = self.proportions
        return round(train * _BUCKETS), round((train + validation) * _BUCKETS)


def parse_proportions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (train, validation, test) as floats; a clear error otherwise."""
    parts = [part.strip() for part in text.split(",")]
    try:
        shares = tuple(float(part) for part in parts)
    except ValueError:
        raise ConfigError(f"split proportions are three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(shares) != len(SPLITS):
        raise ConfigError(f"split proportions are three numbers (train,validation,test), got {text!r}")
    return shares[0], shares[1], shares[2]


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
