"""``python sync.py`` and ``o2c`` are the same CLI; every command shows an example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands(help_text: str) -> list[str]:
    section = help_text.split("Commands:", 1)[1]
    return re.findall(r"^  ([a-z][a-z-]+)\s", section, flags=re.M)


def run(*args: str) -> str:
    result = subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout


def test_sync_py_and_o2c_list_the_same_commands_each_with_an_example():
    via_script = run(sys.executable, "sync.py", "--help")
    o2c = shutil.which("o2c", path=str(Path(sys.executable).parent)) or "o2c"
    via_console_script = run(o2c, "--help")
    assert commands(via_script) == commands(via_console_script)
    assert {"sync", "status", "check-config", "sandbox", "demo"} <= set(commands(via_script))
    for command in commands(via_script):
        text = run(sys.executable, "sync.py", command, "--help")
        assert "Example" in text, command
        assert f"o2c {command}" in text, command
