"""Flags that set a setting: default, help and variable from its one declaration.

A flag that sets a setting defaults from its ``MESSAGEHOOKS_*`` variable and names it in
``--help`` (``[env: …]``); the other flags are per run, and each command's help says so.
"""

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

from messagehooks.settings import SETTINGS, Settings

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The ``messagehooks`` subcommands, to which each command module adds its parsers."""

PER_RUN_FLAGS = "Flags without [env: …] are per run: no environment variable sets them."


def setting_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    name: str,
    settings: Settings,
    *,
    inherited: bool = False,
    **kwargs: Any,
) -> None:
    """A flag for setting `name`: its value in `settings` the default, the rest from its declaration.

    An `inherited` flag repeats one of the parent command's after a subcommand (``dataset stats
    --data-dir X``): it sets nothing unless given, or it would undo the parent's value.
    """
    declaration = SETTINGS[name]
    kwargs.setdefault("type", declaration.cast)
    default = getattr(settings, name)
    shown = str(default).replace("%", "%%") if inherited else "%(default)s"
    help_text = f"{declaration.help} (default: {shown}) [env: {declaration.variable}]"
    parser.add_argument(
        flag, default=argparse.SUPPRESS if inherited else default, help=help_text, dest=name, **kwargs
    )


def dataset_location(parser: argparse.ArgumentParser, settings: Settings, *, inherited: bool = False) -> None:
    """--data-dir and --dataset-uri: where the Delta tables are."""
    setting_flag(parser, "--data-dir", "data_dir", settings, type=Path, inherited=inherited)
    setting_flag(parser, "--dataset-uri", "dataset_uri", settings, inherited=inherited)


def engine_flag(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """--engine: which broker the project runs itself."""
    from messagehooks.engines import ENGINES

    setting_flag(parser, "--engine", "broker_engine", settings, choices=ENGINES)


def server_flags(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """Where the ingest listens, and its data directory."""
    setting_flag(parser, "--host", "host", settings)
    setting_flag(parser, "--port", "port", settings, type=int)
    setting_flag(parser, "--data-dir", "data_dir", settings, type=Path)


def note_per_run_flags(parser: argparse.ArgumentParser) -> None:
    """Say, under each command's --help, that its flags without an env var have none."""
    for _, command in walk(parser):
        if any("[env: " not in (flag.help or "") for flag in flags(command)):
            command.epilog = PER_RUN_FLAGS


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command tree with its command path, e.g. ``("dataset", "stats")``."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from walk(command, (*path, name))


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of one parser, --help left out."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
