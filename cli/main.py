"""The ``messagehooks`` command: broker, ingest, worker, sink, up, tail, dataset, backfill, replay.

This module builds the parser and dispatches; each command lives with its kind (cli/
service_commands.py, dataset_commands.py, devtool_commands.py). A flag that sets a setting
defaults from its ``MESSAGEHOOKS_*`` variable and names it in ``--help`` (``[env: …]``,
cli/flags.py); the other flags are per run. Errors are one line on stderr and exit code 2, never a
traceback.
"""

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cli import dataset_commands, devtool_commands, service_commands
from cli.flags import PER_RUN_FLAGS as PER_RUN_FLAGS
from cli.flags import Commands, note_per_run_flags
from cli.flags import flags as flags
from cli.flags import walk as walk
from messagehooks.errors import MessageHooksError
from messagehooks.logging import configure_logging
from messagehooks.paths import absolute_path, absolute_uri
from messagehooks.settings import Settings, load_settings


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: how its parser is added, and what runs it."""

    add: Callable[[Commands, Settings], None]
    run: Callable[[Settings, argparse.Namespace], int]


COMMANDS: dict[str, Command] = {  # in the order --help lists them
    "broker": Command(service_commands.add_broker, service_commands.run_broker),
    "ingest": Command(service_commands.add_ingest, service_commands.run_ingest),
    "worker": Command(service_commands.add_worker, service_commands.run_worker),
    "topics": Command(service_commands.add_topics, service_commands.run_topics),
    "sink": Command(service_commands.add_sink, service_commands.run_sink),
    "dataset": Command(dataset_commands.add_dataset, dataset_commands.run_dataset),
    "simulate": Command(devtool_commands.add_simulate, devtool_commands.run_simulate),
    "train": Command(dataset_commands.add_train, dataset_commands.run_train),
    "backfill": Command(dataset_commands.add_backfill, dataset_commands.run_backfill),
    "up": Command(service_commands.add_up, service_commands.run_up),
    "tail": Command(devtool_commands.add_tail, devtool_commands.run_tail),
    "replay": Command(devtool_commands.add_replay, devtool_commands.run_replay),
}


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The argument parser; defaults come from `settings` (i.e. from the environment)."""
    parser = argparse.ArgumentParser(
        prog="messagehooks",
        description="Landbot MessageHooks -> Kafka -> turn pairs -> Delta Lake datasets.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add(commands, settings)
    note_per_run_flags(parser)
    return parser


def _apply(settings: Settings, args: argparse.Namespace) -> Settings:
    fields = {f.name for f in dataclasses.fields(Settings)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    # Relative paths are relative to the working directory, as in the variables (docs/CONFIG.md).
    if "data_dir" in changes:
        changes["data_dir"] = absolute_path(changes["data_dir"])
    if "dataset_uri" in changes:
        changes["dataset_uri"] = absolute_uri(changes["dataset_uri"])
    return dataclasses.replace(settings, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``messagehooks`` console script."""
    try:
        settings = load_settings(os.environ)
        args = build_parser(settings).parse_args(argv)
        settings = _apply(settings, args)
        configure_logging(settings.log_level)
        return COMMANDS[args.command].run(settings, args)
    except MessageHooksError as exc:
        sys.stderr.write(f"messagehooks: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
