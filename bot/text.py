"""Text from outside (a web visitor, a form, a search box) made safe to keep: without control
characters and lone UTF-16 surrogates. JSON carries both (``"\\u0000"``, ``"\\ud800"``), browsers
paste them, and neither can be stored: PostgreSQL refuses a NUL in text, SQLite and UTF-8 a lone
surrogate; one such value in a batch would fail the batch."""

from __future__ import annotations

import re

UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters but tab and newline (a carriage return goes: newlines are ``\\n``), and lone
surrogates. Marks that only steer the layout (RTL marks, zero-width joiners) are text and stay."""


def clean(text: str) -> str:
    """``text`` without what cannot be stored (see the module)."""
    return UNPRINTABLE.sub("", text)


def one_line(text: str) -> str:
    """``text`` cleaned, its runs of white space made one space (a search, a key)."""
    return " ".join(UNPRINTABLE.sub(" ", text).split())
