"""The project's version pins as its files state them, read by the tests that check they
agree (tests/unit/test_toolchain_pins.py) and that the built binaries match them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
TOOLCHAIN: Final = REPO_ROOT / "hack" / "toolchain"


def python_pins() -> dict[str, str]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return dict(dep.split("==") for dep in dependencies)


def go_requirement(family: str, module: str) -> str:
    text = (TOOLCHAIN / family / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", text, re.MULTILINE)
    assert match is not None, f"{module} not required in {family}/go.mod"
    return match[1]
