"""docs/bots.md's bot and its pytest file, run as a reader would: copied out and executed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "bots.md"


def python_blocks() -> dict[str, str]:
    """The doc's Python blocks, by the file name their first line gives."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return {block.split(",")[0].removeprefix("# ").split(":")[0]: block for block in blocks}


def test_the_docs_bot_passes_its_own_tests(tmp_path: Path) -> None:
    blocks = python_blocks()
    (tmp_path / "shop.py").write_text(blocks["shop.py"])
    (tmp_path / "test_shop.py").write_text(blocks["test_shop.py"])
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=auto", "test_shop.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_the_docs_ai_bot_passes_its_own_tests(tmp_path: Path) -> None:
    blocks = python_blocks()
    (tmp_path / "faq.py").write_text(blocks["faq.py"])
    (tmp_path / "test_faq.py").write_text(blocks["test_faq.py"])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=auto", "test_faq.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
