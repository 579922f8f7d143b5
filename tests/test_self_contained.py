"""The repository stands on its own: nothing in it points at notes that are not in it.

The team's working notes live outside the repository; a clone that cites them sends readers to
files they do not have. Names are assembled here so this file does not match itself.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTES = ("DESIGN", "BROKER", "PERFORMANCE", "KAFKA", "STYLE")
NOTES_DIR = "sha" + "red"  # the folder beside the repository that holds them
CITATION = re.compile(
    "|".join([*(rf"\b{name}\.md\b" for name in NOTES), rf"\b{NOTES[0]} §", rf"\.\./{NOTES_DIR}/"])
)


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    return [ROOT / name.decode() for name in listed if name and (ROOT / name.decode()).is_file()]


def test_no_file_cites_notes_outside_the_repository():
    cited = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        cited += [
            f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
            for n, line in enumerate(text.splitlines(), 1)
            if CITATION.search(line)
        ]
    assert cited == []
