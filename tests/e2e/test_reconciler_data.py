"""The data story (tests/e2e/data_story.py) with the reconciler as a local process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import RealNode
from tests.e2e.data_story import e2e_harness, rows_survive_delete_and_come_back_on_recreate

pytestmark = pytest.mark.e2e


def test_rows_survive_delete_and_come_back_on_recreate(real_node: RealNode, tmp_path: Path) -> None:
    with e2e_harness(real_node, tmp_path) as harness:
        rows_survive_delete_and_come_back_on_recreate(harness, harness.start)
