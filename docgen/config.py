"""docs/CONFIG.md, generated from the settings object (a test keeps the file up to date).

Run ``.venv/bin/python -m docgen.config > docs/CONFIG.md`` after changing a setting.
"""

import sys

from messagehooks.settings import SETTINGS

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
    """Every MESSAGEHOOKS_ variable with its type, default and meaning, as a Markdown page.

    Each row is one setting's declaration (`messagehooks.variables.setting`), as declared.
    """
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
    for declaration in SETTINGS.values():
        default = declaration.unset or f"`{declaration.default}`"
        escaped = declaration.help.replace("|", "\\|")
        lines.append(f"| `{declaration.variable}` | {declaration.type_label} | {default} | {escaped} |")
    return "\n".join([*lines, "", PATHS]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(config_markdown())
