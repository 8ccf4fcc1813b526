"""Typed requests that do what a button does ("转人工", "go back please", "換成英文").

A phrase of the content's ``intents`` counts when the message holds it and says little else: a
few more characters of Chinese or a few more English words (polite words, "I want to"). A longer
message that happens to contain the phrase is a question ("人工智能公司适合做27001吗"), left to the
matcher. English phrases match whole words only ("back" is not in "background"). Traditional
Chinese is read through the same normalisation as the FAQ's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bot.faq.matcher import normalise

SLACK_CHARS = 6
"""Chinese characters a message may hold besides the phrase (我想要…, 麻烦…一下)."""
SLACK_WORDS = 4
"""English words a message may hold besides the phrase (I'd like to…, please)."""
_PUNCTUATION = re.compile(r"[\W_]+")
_LATIN = re.compile(r"([a-z0-9]+)")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _words(text: str) -> list[str]:
    """Normalised words: English words apart, each run of Chinese one word."""
    return _PUNCTUATION.sub(" ", _LATIN.sub(r" \1 ", normalise(text))).split()


class Intents:
    def __init__(self, intents: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        phrases: list[tuple[str, str]] = []
        for action, by_locale in intents.items():
            for listed in by_locale.values():
                for phrase in listed:
                    words = _words(phrase)
                    if words:
                        phrases.append((" ".join(words), action))
        self._phrases = sorted(set(phrases), key=lambda p: -len(p[0]))
        """(a phrase, its words joined by one space; its action), the longest first."""

    def find(self, text: str) -> str | None:
        """The action ``text`` asks for, or None."""
        if len(text) > 80:
            return None
        words = _words(text)
        if not words:
            return None
        spaced = f" {' '.join(words)} "
        for phrase, action in self._phrases:
            if _CJK.search(phrase):
                compact = spaced.replace(" ", "")
                if phrase.replace(" ", "") in compact:
                    rest = compact.replace(phrase.replace(" ", ""), "", 1)
                    if len(rest) <= SLACK_CHARS:
                        return action
            elif f" {phrase} " in spaced:
                rest_words = spaced.replace(f" {phrase} ", " ", 1).split()
                if len(rest_words) <= SLACK_WORDS and not any(_CJK.search(w) for w in rest_words):
                    return action
        return None
