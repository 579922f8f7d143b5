"""The hooks of ``MESSAGEHOOKS_HOOKS``: what one is, and how a JSON/TOML list of them is checked.

Every hook is checked at start, so that a typo cannot leave a hook open. Imports no starlette at
module level (`Secret` is made on first parse): `features` reads setting defaults without it.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from messagehooks.errors import ConfigError
from messagehooks.variables import ENV_PREFIX

if TYPE_CHECKING:
    from starlette.datastructures import Secret

HOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEV_HOOK = "default"


@dataclass(frozen=True, slots=True)
class Hook:
    """One MessageHook: Landbot posts to ``/hooks/{name}`` with one of `tokens`.

    An `open` hook accepts any request without a token (the dev hook, or a configured hook with
    ``"open": true``); a hook without a channel accepts messages of any channel.
    """

    name: str
    channel: str | None = None
    tokens: tuple[Secret, ...] = ()
    open: bool = False


DEV_HOOKS = (Hook(DEV_HOOK, open=True),)
"""The hooks without ``MESSAGEHOOKS_HOOKS``: the dev hook, open to any request."""


def parse_hooks(value: str) -> tuple[Hook, ...]:
    """Hooks from a JSON list, or from a path to a JSON or TOML file (``[[hooks]]`` tables).

    Every hook is checked at start, so that a typo cannot leave a hook open: see `_hook`.

    Raises:
        ConfigError: malformed JSON/TOML or hook (one line naming the hook and the fix).
    """
    text = value.strip()
    if not text.startswith("["):
        path = Path(text)
        if not path.is_file():
            # Never echo the value: it may hold tokens.
            raise ConfigError(f"{ENV_PREFIX}HOOKS is neither a JSON list nor the path of an existing file")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            return _hooks_from_items(_toml_hooks(path, text))
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{ENV_PREFIX}HOOKS is not valid JSON: {exc.msg} at {exc.pos}") from exc
    return _hooks_from_items(items)


HOOK_KEYS = ("name", "channel", "token", "tokens", "open")
"""The keys of a hook object; any other is refused (a misspelled "tokens" would open the hook)."""


def _toml_hooks(path: Path, text: str) -> Any:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{ENV_PREFIX}HOOKS file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(document) - {"hooks"})
    if unknown:
        raise ConfigError(
            f"{ENV_PREFIX}HOOKS file {path} has an unknown key {unknown[0]!r}"
            f"{_did_you_mean(unknown[0], ['hooks'])}; write the hooks as [[hooks]] tables"
        )
    return document.get("hooks", [])


def _hooks_from_items(items: Any) -> tuple[Hook, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{ENV_PREFIX}HOOKS must be a non-empty list of hook objects")
    hooks = tuple(_hook(index, item) for index, item in enumerate(items))
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{ENV_PREFIX}HOOKS has duplicate hook names: {sorted(names)}")
    return hooks


def _hook(index: int, item: Any) -> Hook:
    """One hook object: known keys only, a token unless ``"open": true``, a channel id or none."""
    where = f"{ENV_PREFIX}HOOKS[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not HOOK_NAME.match(name):
        raise ConfigError(f"{where}.name must match {HOOK_NAME.pattern}, got {name!r}")
    where = f"{where} (hook {name!r})"
    unknown = sorted(set(item) - set(HOOK_KEYS))
    if unknown:
        raise ConfigError(
            f"{where} has an unknown key {unknown[0]!r}{_did_you_mean(unknown[0], HOOK_KEYS)}; "
            f"the keys are {', '.join(HOOK_KEYS)}"
        )
    tokens = _hook_tokens(where, item)
    is_open = item.get("open", False)
    if not isinstance(is_open, bool):
        raise ConfigError(f"{where}: open must be true or false, got {type(is_open).__name__}")
    if is_open and tokens:
        raise ConfigError(f'{where} has tokens and "open": true; an open hook takes no token: drop one')
    if not is_open and not tokens:
        raise ConfigError(
            f'{where} has no token: give "tokens": ["..."], or "open": true to accept any request '
            "without one (development only)"
        )
    return Hook(name=name, channel=_hook_channel(where, item.get("channel")), tokens=tokens, open=is_open)


def _hook_tokens(where: str, item: dict[str, Any]) -> tuple[Secret, ...]:
    if "token" in item and "tokens" in item:
        raise ConfigError(f'{where} has both "token" and "tokens": put every token in "tokens"')
    raw = item.get("tokens", [item["token"]] if "token" in item else [])
    if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
        # Never echo the value: it may be a secret.
        raise ConfigError(f"{where} tokens must be non-empty strings")
    from starlette.datastructures import Secret  # lazily: see the module docstring

    return tuple(Secret(t) for t in raw)


def _hook_channel(where: str, value: Any) -> str | None:
    """The Landbot channel id the hook tracks: a number or a non-blank string, as in messages."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        got = "an empty string" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ConfigError(f"{where}: channel must be a Landbot channel id such as 761536, got {got}")
    return str(value).strip()


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
