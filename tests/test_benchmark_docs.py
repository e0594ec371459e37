"""docs/BENCHMARKS.md writes the command of every number: each benchmark script it names must exist and
take every flag the commands pass (an option renamed in a script must be renamed in the docs too)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _documented_flags() -> dict[str, set[str]]:
    text = (REPO / "docs" / "BENCHMARKS.md").read_text()
    flags: dict[str, set[str]] = {}
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():  # continuation lines joined
            command = re.split(r"\s#", line)[0].strip()
            if command.startswith(".venv/bin/python benchmarks/"):
                script = command.split()[1]
                flags.setdefault(script, set()).update(re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", command))
    return flags


DOCUMENTED = _documented_flags()


def test_the_docs_name_the_benchmark_scripts() -> None:
    assert len(DOCUMENTED) >= 10  # the parser above still finds the commands


@pytest.mark.parametrize("script", sorted(DOCUMENTED))
def test_every_documented_flag_exists(script: str) -> None:
    assert (REPO / script).is_file(), f"{script} is named in docs/BENCHMARKS.md but does not exist"
    shown = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-500:]
    listed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", shown.stdout))
    missing = sorted(DOCUMENTED[script] - listed)
    assert not missing, f"{script}: docs/BENCHMARKS.md passes {missing}, which --help does not list"
