"""``flows check``: the shipped content passes; broken content is reported at the right lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content import ContentError, check_dir, load_content

from .conftest import FLOWS, ROOT

LONG_LABEL = "长" * 70
LONG_TEXT = "字" * 4100
BROKEN_TEMPLATE = """\
id: broken
title: {zh: 坏, en: Broken}
start: a
steps:
  a:
    text: {zh: "你好 {{ nobody }}", en: "Hi"}
    buttons:
      - label: {zh: 去, en: Go}
        goto: nowhere
      - label: {zh: 只有中文}
        goto: b
      - label: {zh: "LONG_LABEL", en: Long}
        goto: b
  b:
    text:
      zh: "<b>未闭合"
      en: "{{ answers.ghost }}"
  c:
    text: {zh: 孤立, en: Orphan}
  d:
    type: input
    var: x
    kind: phone
    text: {zh: "{% if %}", en: ok}
    next: a
  e:
    type: menu
    text: {zh: "LONG_TEXT", en: ok}
    buttons:
      - label: {zh: 回, en: Back}
        goto: a
"""
BROKEN = BROKEN_TEMPLATE.replace("LONG_LABEL", LONG_LABEL).replace("LONG_TEXT", LONG_TEXT)


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    main = (root / "main.yaml").read_text(encoding="utf-8")
    main = main.replace(
        "        goto: guide_business\n",
        "        goto: guide_business\n      - label: {zh: 坏, en: Broken}\n        flow: broken\n",
        1,
    )
    (root / "main.yaml").write_text(main, encoding="utf-8")
    (root / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    return root


def test_shipped_content_passes() -> None:
    assert check_dir(FLOWS) == []
    content = load_content(FLOWS)
    assert {"main", "contact", "iso20000", "iso9001", "iso27001", "three"} <= set(content.flows)
    assert content.locales == ["zh", "en"]


def test_broken_file_is_reported_with_line_numbers(broken_dir: Path) -> None:
    problems = [str(p) for p in check_dir(broken_dir)]
    expected = [
        "flows/broken.yaml:6: template: undefined variable 'nobody'",
        "flows/broken.yaml:9: step 'a': unknown target 'nowhere'",
        "flows/broken.yaml:10: missing translation 'en'",
        "flows/broken.yaml:12: button label longer than 64 characters",
        "flows/broken.yaml:16: HTML: <b> is never closed",
        "flows/broken.yaml:17: template: no step sets answers.ghost",
        "flows/broken.yaml:18: step 'c' cannot be reached",
        "flows/broken.yaml:20: step 'd' cannot be reached",
        "flows/broken.yaml:24: template: Expected an expression, got 'end of statement block'",
        "flows/broken.yaml:26: step 'e' cannot be reached",
        "flows/broken.yaml:28: text of 4100 characters exceeds 4096: use a pages step",
    ]
    for line in expected:
        assert line in problems, (line, problems)
    assert problems == expected
    with pytest.raises(ContentError) as err:
        load_content(broken_dir)
    assert len(err.value.problems) == len(problems)


def test_yaml_errors_and_duplicate_ids(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    (root / "dup.yaml").write_text(
        "id: dup\ntitle: x\nstart: a\nsteps:\n  a:\n    text: x\n  a:\n    text: y\n"
    )
    (root / "bad.yaml").write_text("id: bad\ntitle: [unclosed\n")
    (root / "again.yaml").write_text((root / "iso9001.yaml").read_text(encoding="utf-8"))
    problems = [str(p) for p in check_dir(root)]
    assert any(p.startswith("flows/dup.yaml:7: YAML:") and 'duplicate key "a"' in p for p in problems), (
        problems
    )
    assert any(p.startswith("flows/bad.yaml:") and "YAML" in p for p in problems), problems
    assert any(
        p.startswith("flows/iso9001.yaml:") and "duplicate flow id 'iso9001'" in p for p in problems
    ) or any(p.startswith("flows/again.yaml:") and "duplicate flow id 'iso9001'" in p for p in problems), (
        problems
    )


def test_schema_errors_name_the_field_and_line(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    text = (root / "contact.yaml").read_text(encoding="utf-8").replace("kind: phone", "kind: fax")
    (root / "contact.yaml").write_text(text, encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "kind: fax" in s)
    problems = [str(p) for p in check_dir(root)]
    assert any(p.startswith(f"flows/contact.yaml:{line}: steps.phone.kind:") for p in problems), problems


def test_missing_common_text_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    common = (root / "common.yaml").read_text(encoding="utf-8")
    common = common.replace("\n  expired:", "\n  expired_old:")
    (root / "common.yaml").write_text(common, encoding="utf-8")
    problems = [str(p) for p in check_dir(root)]
    assert any("texts: missing 'expired'" in p for p in problems), problems


def test_cli_prints_problems_and_exits_1(broken_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "flows", "check", str(broken_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "broken.yaml:9: step 'a': unknown target 'nowhere'" in proc.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "bot", "flows", "check", "flows"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_faq_problems_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    faq = (root / "faq.yaml").read_text(encoding="utf-8")
    faq = faq.replace("  - id: validity", "  - id: fee", 1).replace(
        "link: iso20000.validity", "link: iso20000.nope", 1
    )
    (root / "faq.yaml").write_text(faq, encoding="utf-8")
    problems = [str(p) for p in check_dir(root)]
    lines = faq.splitlines()
    dup = [i for i, s in enumerate(lines, 1) if s == "  - id: fee"][1]
    assert f"flows/faq.yaml:{dup}: duplicate FAQ id 'fee'" in problems, problems
    assert any("unknown step 'iso20000.nope'" in p for p in problems), problems


def test_an_unknown_intent_action_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    common = (root / "common.yaml").read_text(encoding="utf-8")
    common = common.replace('\n  "lang:en":', '\n  "lang:fr":').replace("\n  back:\n", "\n  backwards:\n")
    (root / "common.yaml").write_text(common, encoding="utf-8")
    problems = [str(p) for p in check_dir(root)]
    assert any("intents: unknown action 'lang:fr'" in p for p in problems), problems
    assert any("intents: unknown action 'backwards'" in p for p in problems), problems


def test_synonym_problems_are_reported(tmp_path: Path) -> None:
    """A synonym must lead to a word the content says, which is no synonym itself; each word once."""
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    faq = (root / "faq.yaml").read_text(encoding="utf-8")
    assert "\nsynonyms:" not in faq or "\nsynonyms:\n" in faq
    extra = (
        "  - {say: 测量设备, also: [测量家伙]}\n"
        "  - {say: 飞碟, also: [UFO]}\n"
        "  - {say: 餐饮, also: [吃饭铺子, 測量家伙]}\n"
        "  - {say: 吃饭铺子, also: [饭铺]}\n"
    )
    if "\nsynonyms:\n" in faq:
        faq = faq.replace("\nsynonyms:\n", "\nsynonyms:\n" + extra, 1)
    else:
        faq += "\nsynonyms:\n" + extra
    (root / "faq.yaml").write_text(faq, encoding="utf-8")
    problems = [str(p) for p in check_dir(root)]
    line = faq.splitlines().index("  - {say: 飞碟, also: [UFO]}") + 1
    assert f"flows/faq.yaml:{line}: synonym '飞碟': the content never says it" in problems, problems
    assert any("synonym '測量家伙' is read as '测量设备' already" in p for p in problems), problems
    assert any("synonym '吃饭铺子' is itself read as '餐饮'" in p for p in problems), problems
    assert not any("'UFO'" in p or "'测量家伙'" in p for p in problems), problems


def test_wechat_menu_problems_are_reported_against_wechats_limits(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    shutil.copytree(FLOWS, root)
    common = (root / "common.yaml").read_text(encoding="utf-8")
    start = common.index("wechat_menu:\n")
    end = common.index("\ntexts:\n")
    menu = (
        "wechat_menu:\n"
        "  - label: 认证项目和更多的说明\n"  # 30 bytes: over the top entries' 16
        "    entries:\n"
        + "".join(f"      - {{label: 第{i}项, flow: iso9001}}\n" for i in range(6))
        + "  - {label: 顾问, command: teleport}\n"
        "  - {label: 新, flow: iso14001}\n"
        "  - {label: 网站, url: ftp://example.com}\n"
    )
    common = common[:start] + menu + common[end:]
    (root / "common.yaml").write_text(common, encoding="utf-8")
    problems = [str(p) for p in check_dir(root)]
    line = common.splitlines().index("  - {label: 新, flow: iso14001}") + 1
    assert any("wechat_menu: at most 3 entries" in p for p in problems), problems
    assert any("'认证项目和更多的说明' must be 1–16 bytes" in p for p in problems), problems
    assert any("'认证项目和更多的说明': at most 5 entries" in p for p in problems), problems
    assert any("unknown command 'teleport'" in p for p in problems), problems
    assert f"flows/common.yaml:{line}: wechat_menu: '新': unknown flow 'iso14001'" in problems, problems
    assert any("'网站': the url must start with https://" in p for p in problems), problems
