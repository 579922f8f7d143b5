"""How a setting is declared once - type, default, help, checks - and read from its variable.

A `Settings` field made with `setting(...)` carries all there is to know about it; the loader
(`messagehooks.settings.load_settings`), the CLI's ``--help`` and docs/CONFIG.md all read that one
`Declaration`, so a default or a help text is never written twice. The variable is the field's
name in capitals after `ENV_PREFIX`; its type is the default's (int, float, bool or str).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from messagehooks.errors import ConfigError

if TYPE_CHECKING:  # starlette loads with the loader only: `features` reads defaults without it
    from starlette.config import Config

ENV_PREFIX = "MESSAGEHOOKS_"
_METADATA_KEY = "messagehooks.setting"
_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True, slots=True)
class Declaration:
    """One setting: its field, help, how its variable's text becomes a value, and its default.

    A setting with an `unset` text has a computed default (None, or derived from another
    setting): its variable is read as text, ``""`` when unset, and `convert` maps that text to
    the value. The others are read with the default's type, as ``starlette.config`` casts.
    """

    help: str
    convert: Callable[[Any], Any] | None = None
    check: Callable[[Any, str], Any] | None = None
    unset: str | None = None
    """The default column of docs/CONFIG.md for a computed default."""
    type_name: str | None = None
    """The type column of docs/CONFIG.md, when the field's type would say less."""
    name: str = ""
    default: Any = None
    annotation: str = ""

    @property
    def env(self) -> str:
        """The variable without its prefix, as ``--help`` and the errors name it (``DATA_DIR``)."""
        return self.name.upper()

    @property
    def variable(self) -> str:
        """The full variable name, e.g. ``MESSAGEHOOKS_DATA_DIR``."""
        return f"{ENV_PREFIX}{self.env}"

    @property
    def cast(self) -> type:
        """How the variable's text is read: the default's type, or text for a computed default."""
        return str if self.unset is not None else type(self.default)

    @property
    def type_label(self) -> str:
        """The type docs/CONFIG.md shows: `type_name`, or the field's type without ``| None``."""
        return self.type_name or self.annotation.removesuffix(" | None")

    def read(self, config: Config) -> Any:
        """The value of the variable in `config` (its default when unset), converted and checked."""
        raw = config(self.env, cast=self.cast, default="" if self.unset is not None else self.default)
        value = self.convert(raw) if self.convert is not None else raw
        return self.check(value, self.env) if self.check is not None else value


def setting(
    default: Any = None,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    convert: Callable[[Any], Any] | None = None,
    check: Callable[[Any, str], Any] | None = None,
    unset: str | None = None,
    type_name: str | None = None,
) -> Any:
    """A dataclass field declaring a setting (see `Declaration`); `factory` for a computed default."""
    declaration = Declaration(help, convert, check, unset, type_name)
    metadata = {_METADATA_KEY: declaration}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def declarations(settings_class: type) -> Mapping[str, Declaration]:
    """The settings declared on `settings_class`, by field name, in declaration order."""
    found: dict[str, Declaration] = {}
    for field in dataclasses.fields(settings_class):
        declaration = field.metadata.get(_METADATA_KEY)
        if declaration is None:
            continue  # derived by the loader (hooks_configured), no variable of its own
        default = None if field.default is dataclasses.MISSING else field.default  # a factory: `unset` says
        found[field.name] = dataclasses.replace(
            declaration, name=field.name, default=default, annotation=str(field.type)
        )
    return found


def positive(value: int, name: str) -> int:
    """`value`, if at least 1."""
    if value < 1:
        raise ConfigError(f"{ENV_PREFIX}{name} must be at least 1, got {value}")
    return value


def not_negative(value: _Number, name: str) -> _Number:
    """`value`, if 0 or more."""
    if not value >= 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be 0 or more, got {value}")
    return value


def above_zero(value: float, name: str) -> float:
    """`value`, if above 0."""
    if not value > 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be above 0, got {value}")
    return value


def seconds(value: float, name: str) -> float:
    """`value`, if a number of seconds above 0."""
    if not value > 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be a number of seconds above 0, got {value}")
    return value


def parse_proportions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (train, validation, test) as checked shares; a clear error otherwise."""
    parts = [part.strip() for part in text.split(",")]
    try:
        shares = tuple(float(part) for part in parts)
    except ValueError:
        raise ConfigError(f"split proportions are three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(shares) != 3:
        raise ConfigError(f"split proportions are three numbers (train,validation,test), got {text!r}")
    return check_proportions((shares[0], shares[1], shares[2]))


def check_proportions(shares: tuple[float, ...]) -> tuple[float, float, float]:
    """`shares`, if three numbers >= 0 that sum to 1 (train, validation, test)."""
    if len(shares) != 3 or any(not share >= 0 for share in shares):
        raise ConfigError(f"split proportions must be three shares >= 0, got {shares}")
    if abs(sum(shares) - 1.0) > 1e-9:
        raise ConfigError(f"split proportions must sum to 1, got {shares} = {sum(shares)}")
    return shares[0], shares[1], shares[2]


def not_empty(value: str, name: str) -> str:
    """`value`, if not blank."""
    if not value.strip():
        raise ConfigError(f"{ENV_PREFIX}{name} must not be empty")
    return value
