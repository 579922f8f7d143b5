"""docs/CONFIG.md, generated from the settings object (a test keeps the file up to date).

Run ``.venv/bin/python -m docgen.config > docs/CONFIG.md`` after changing a setting.
"""

import dataclasses
import sys
import typing

from messagehooks.settings import ENV_PREFIX, SETTINGS_HELP, Settings

_UNSET = {
    "KAFKA_BOOTSTRAP": "(unset: the project's own broker)",
    "KAFKA_LIBS": "(unset: `.venv/kafka/libs`)",
    "HOOKS": "(unset: dev hook `default`, open: no token)",
    "DATA_DIR": "(unset: `data/` of the checkout)",
    "DATASET_URI": "(unset: `DATA_DIR/datasets`)",
    "ID_SALT": "(unset: only ids holding personal data are hashed, with a public salt)",
}
_TYPES = {"hooks": "JSON list or file path"}
PATHS = """## Paths

Paths resolve the same wherever a command or a notebook runs from (messagehooks/paths.py):

- Unset, `MESSAGEHOOKS_DATA_DIR` is `data/` of the checkout the `messagehooks` package is
  imported from (the directory of its `pyproject.toml`; `make venv` installs the checkout into
  `.venv` as an editable package). So `make run`, `.venv/bin/messagehooks` run from any
  directory and a notebook whose kernel starts in `notebooks/` use the same `data/`. Installed
  from a wheel there is no checkout, and the default is `data/` of the working directory (the
  Docker image sets `MESSAGEHOOKS_DATA_DIR=/data`).
- A path you give (`MESSAGEHOOKS_DATA_DIR`, `--data-dir`, `MESSAGEHOOKS_KAFKA_LIBS`, a local
  `MESSAGEHOOKS_DATASET_URI`, a `MESSAGEHOOKS_HOOKS` file) is relative to the working directory
  of the command that reads it, as any shell path, and is made absolute at once: `up` hands its
  children the absolute path. A notebook's kernel starts in `notebooks/`, so a relative value
  there is relative to `notebooks/`; prefer an absolute one.
- `--help` shows the resolved default, and errors name the absolute path they looked at
  (`no Delta table at /…/data/datasets/messages yet …`)."""


def config_markdown() -> str:
    """Every MESSAGEHOOKS_ variable with its type, default and meaning, as a Markdown page."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    hints = typing.get_type_hints(Settings)
    lines = [
        "# Configuration",
        "",
        "Every process reads these variables once, at start (`messagehooks.settings.load_settings`);",
        "every CLI flag defaults from one of them and names it in `--help`. Generated from the",
        "settings object by `python -m docgen.config`; `tests/messagehooks/test_docs.py`",
        "fails when this page is out of date.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for env, meaning in SETTINGS_HELP.items():
        name = env.lower()
        field = fields[name]
        type_name = _TYPES.get(name) or _type_name(hints[name])
        default = _UNSET.get(env) or f"`{field.default}`"
        escaped = meaning.replace("|", "\\|")
        lines.append(f"| `{ENV_PREFIX}{env}` | {type_name} | {default} | {escaped} |")
    return "\n".join([*lines, "", PATHS]) + "\n"


def _type_name(hint: object) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return getattr(base, "__name__", str(base))


if __name__ == "__main__":
    sys.stdout.write(config_markdown())
