from __future__ import annotations

import pytest

from bot.engine.render import html_problems, split_message, visible_length, visible_text
from bot.engine.validators import validate


def test_short_text_is_one_message() -> None:
    assert split_message("<b>hi</b>") == ["<b>hi</b>"]


def test_long_text_is_split_at_lines_with_tags_kept_valid() -> None:
    lines = [f"<b>第{i}项</b> " + "材料说明" * 30 for i in range(120)]
    text = "<i>" + "\n".join(lines) + "</i>"
    parts = split_message(text)
    assert len(parts) >= 3
    for part in parts:
        assert visible_length(part) <= 4096
        assert html_problems(part) == [], part[:80]
        assert part.startswith("<i>")
    joined = "".join(visible_text(p).replace("\n", "") for p in parts)
    assert joined == visible_text(text).replace("\n", "")


def test_one_huge_line_is_cut_at_words() -> None:
    text = " ".join(["word"] * 3000)
    parts = split_message(text, limit=1000)
    assert all(visible_length(p) <= 1000 for p in parts)
    assert " ".join(parts).split() == text.split()


def test_entities_are_not_cut_and_count_as_one_character() -> None:
    text = "&lt;&amp;&gt;" * 2000
    parts = split_message(text)
    assert all(visible_length(p) <= 4096 for p in parts)
    assert "".join(visible_text(p) for p in parts) == "<&>" * 2000


def test_utf16_length_counts_emoji_twice() -> None:
    assert visible_length("😀") == 2 and visible_length("中") == 1


def test_html_problems() -> None:
    assert html_problems("<b>ok</b> <a href='https://x'>x</a> &amp; &#128512;") == []
    assert html_problems("<div>x</div>") == ["tag <div> is not supported by Telegram HTML"]
    assert "<b> is never closed" in html_problems("<b>x")
    assert any("bare '&'" in p for p in html_problems("A & B"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),
        ("+852 5123 4567", "+85251234567"),
        ("010 6552 9988", "+861065529988"),
    ],
)
def test_valid_phones_become_e164(raw: str, expected: str) -> None:
    assert validate("phone", raw) == (True, expected)


@pytest.mark.parametrize("raw", ["12345", "abc", "1380013800", "+1 000", "", "1" * 40, "13800138000; DROP"])
def test_invalid_phones(raw: str) -> None:
    assert validate("phone", raw) == (False, None)


def test_email_is_normalised_offline() -> None:
    assert validate("email", "Wang@Example.COM") == (True, "Wang@example.com")
    assert validate("email", "not-an-email")[0] is False
    assert validate("email", "a@b")[0] is False


def test_integers_accept_chinese_units_and_bounds() -> None:
    assert validate("integer", "50人") == (True, 50)
    assert validate("integer", "１,200") == (True, 1200)
    assert validate("integer", "0", min=1) == (False, None)
    assert validate("integer", "many") == (False, None)


def test_text_is_cleaned_and_bounded() -> None:
    assert validate("text", "  ACME \x00 Co  ") == (True, "ACME Co")
    assert validate("text", "   ") == (False, None)
    assert validate("text", "x" * 61, max=60) == (False, None)
