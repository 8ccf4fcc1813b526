"""JSON for the hot paths (Bot API requests and replies, conversation records, JSON columns):
orjson, several times faster than the standard library, with the standard library as the
fallback where orjson is stricter (a lone UTF-16 surrogate, which ``json`` accepts and escapes),
so one odd value never stops a whole batch or a whole ``getUpdates`` reply."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))  # escaped: "\ud83d"


def loads(text: str | bytes) -> Any:
    """The value of ``text``; ValueError if it is not JSON (or nests deeper than the parser goes:
    orjson refuses past 1024 levels, and the standard library then runs out of stack)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
