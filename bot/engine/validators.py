"""Validation of typed answers. Pure functions: no network (e-mail deliverability is not checked)."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from bot.engine.state import Answer

DEFAULT_PHONE_REGION = "CN"
TEXT_MAX = 500

_FULLWIDTH = str.maketrans({chr(0xFF10 + i): str(i) for i in range(10)} | {"\uff0b": "+", "\u3000": " "})
_CN_INT = re.compile(r"^\s*([0-9]+)\s*(?:人|个|名|people|persons?|staff|employees?)?\s*$", re.I)


def clean_text(text: str) -> str:
    """NFC, control characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return re.sub(r"[ \t]+", " ", text).strip()


def validate(kind: str, raw: str, *, min: int | None = None, max: int | None = None) -> tuple[bool, Answer]:
    """Return ``(True, normalised value)`` or ``(False, None)``."""
    text = clean_text(raw)
    if kind == "text":
        lo = 1 if min is None else min
        hi = TEXT_MAX if max is None else max
        return (True, text) if text and lo <= len(text) <= hi else (False, None)
    if kind == "integer":
        m = _CN_INT.match(text.translate(_FULLWIDTH).replace(",", ""))
        if not m:
            return False, None
        value = int(m.group(1))
        if (min is not None and value < min) or (max is not None and value > max):
            return False, None
        return True, value
    if kind == "phone":
        return validate_phone(text)
    if kind == "email":
        try:
            info = validate_email(text, check_deliverability=False)
        except EmailNotValidError:
            return False, None
        return True, info.normalized
    raise ValueError(f"unknown input kind {kind!r}")


def validate_phone(text: str, region: str = DEFAULT_PHONE_REGION) -> tuple[bool, Answer]:
    """A valid phone number, stored in E.164 (``+8613800138000``)."""
    text = text.translate(_FULLWIDTH)
    if not re.fullmatch(r"[+0-9()\-. ]{5,30}", text):
        return False, None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False, None
    if not phonenumbers.is_valid_number(number):
        return False, None
    return True, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
