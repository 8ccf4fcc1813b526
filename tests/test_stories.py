"""Conversation tests as content: the shipped stories pass; a wrong one fails readably."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.engine.engine import Engine
from bot.stories import run_stories

from .conftest import FLOWS, ROOT


def test_shipped_stories_pass(engine: Engine) -> None:
    results = run_stories(engine, FLOWS / "tests")
    assert len(results) >= 8
    assert {r.file for r in results} >= {"iso20000.yaml", "schemes.yaml", "lead.yaml"}
    assert [f for r in results for f in r.failures] == []


def test_a_wrong_story_fails_with_a_readable_diff(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "wrong.yaml").write_text(
        """
name: validity is wrong on purpose
lang: zh
steps:
  - say: /start iso20000
  - press: 有效期与年审
  - expect: {contains: ["证书有效期为五年"], buttons: ["不存在的按钮"]}
  - press: 没有这个按钮
  - lead: {company: ACME}
""",
        encoding="utf-8",
    )
    [result] = run_stories(engine, tmp_path)
    assert not result.ok
    text = "\n".join(result.failures)
    assert "step 3: the reply does not contain '证书有效期为五年'" in text
    assert "-证书有效期为五年" in text and "+ISO/IEC 20000 证书的有效期和年审" in text  # the diff
    assert "no button '不存在的按钮'" in text
    assert "step 4: no buttons match '没有这个按钮'" in text
    assert "step 5" not in text  # stops at the first failing action


def test_cli_runs_the_stories_and_fails_on_a_wrong_one(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    ok = subprocess.run([sys.executable, "-m", "bot", "flows", "test", str(root)],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert " 0 failed" in ok.stdout
    story = root / "tests" / "schemes.yaml"
    story.write_text(story.read_text(encoding="utf-8").replace("ISO 45001", "ISO 99999"), encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "bot", "flows", "test", str(root)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert bad.returncode == 1
    assert "FAIL schemes.yaml: Three systems" in bad.stdout and "'ISO 99999'" in bad.stdout
