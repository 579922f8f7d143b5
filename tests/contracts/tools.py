"""Running the validators the contracts' users run: the npm ones pinned in tools/, promtool, hadolint.

Without one of them a test skips, naming how to install it; with MESSAGEHOOKS_REQUIRE_TOOLS=1
(CI, .ci/run) it fails instead.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
SCHEMAS = ROOT / "docs" / "schemas"
REQUIRE_TOOLS = "MESSAGEHOOKS_REQUIRE_TOOLS"

# No telemetry, update checks or banners: the tests run without a route to the internet.
_QUIET = {
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    "NO_UPDATE_NOTIFIER": "1",
    "SUPPRESS_NO_CONFIG_WARNING": "1",
}


def missing(message: str) -> None:
    """Skip, or fail where CI requires every validator."""
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(f"{message} ({REQUIRE_TOOLS}=1: CI runs every validator)", pytrace=False)
    pytest.skip(message)


def node_tools() -> str:
    """The path of `node`, once tools/ is installed (`make tools`: npm ci)."""
    node = shutil.which("node")
    if node is None:
        missing("node not found: install Node.js 20+ and npm, then `make tools`")
    if not (TOOLS / "node_modules" / ".installed-stamp").is_file():
        missing("the contract validators are not installed: `make tools` (npm ci in tools/)")
    assert node is not None
    return node


def run_node(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`node ARGS` in tools/, quiet and offline; @asyncapi/cli's analytics are switched off."""
    node = node_tools()
    analytics = tmp_path / "asyncapi-analytics.json"
    analytics.write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "ci"})
    )
    env = {**os.environ, **_QUIET, "ASYNCAPI_METRICS_CONFIG_PATH": str(analytics), "HOME": str(tmp_path)}
    return subprocess.run(
        [node, *args], cwd=TOOLS, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def bin_script(name: str) -> str:
    """The entry script of an npm package's command, run with `node` (no shell shim needed)."""
    return str(TOOLS / "node_modules" / ".bin" / name)


def ajv_check(schema_dir: Path, tmp_path: Path, records: dict[str, list[Any]] | None = None) -> str:
    """tools/ajv-check.mjs: every schema compiled in strict mode, `records` validated; its output."""
    args = ["ajv-check.mjs", str(schema_dir)]
    if records is not None:
        path = tmp_path / "records.json"
        path.write_text(json.dumps(records))
        args.append(str(path))
    result = run_node(args, tmp_path)
    assert result.returncode == 0, f"ajv: {result.stderr}{result.stdout}"
    return result.stdout


def executable(name: str, how: str) -> str:
    """A command on PATH or in this interpreter's bin directory (a wheel's scripts are there)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        missing(f"{name} not found: {how}")
    assert found is not None
    return found


def promtool_check(text: str, where: str) -> None:
    """`promtool check metrics` (Debian's prometheus package) passes on an exposition text."""
    promtool = executable("promtool", "apt-get install prometheus (Debian's package ships promtool)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"promtool on {where}: {result.stdout}{result.stderr}"
    assert not (result.stdout + result.stderr).strip(), f"promtool on {where}: {result.stdout}{result.stderr}"
