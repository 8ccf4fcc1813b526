"""Matching free questions to FAQ entries, in Simplified and Traditional Chinese and English.

1. Normalise: NFKC, Traditional to Simplified (zhconv), lower case.
2. Tokens: Chinese characters and character bigrams (no segmenter needed), English words and,
   for longer words, character trigrams, so a misspelt word still shares most of its tokens.
3. Candidates: BM25 (bm25s) over one document per entry (its topic, examples and keywords).
4. Confidence for the best few candidates: how much of the question the entry's vocabulary
   covers, weighted by rarity (a question about the weather covers little of any entry), blended
   with the closest example's fuzzy similarity (rapidfuzz). Below a threshold the bot does not
   guess: it offers the closest topics instead.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import zhconv
from rapidfuzz import fuzz, process

from bot.content.model import FaqEntry

ACCEPT = 0.55
"""Confidence from which the best entry is answered."""
SUGGEST = 0.25
"""Confidence from which entries are offered as suggestions (below: off topic)."""
CANDIDATES = 6

_CJK = re.compile(r"[\u3400-\u9fff]+|[a-z0-9]+")
_STOP_ZH = frozenset("的了吗呢啊呀吧么嘛哦哈是我你他她它们这那个有在要想请问一下就都也还和与及或得着过")
_STOP_EN = frozenset(
    [
        "the",
        "a",
        "an",
        "is",
        "are",
        "am",
        "was",
        "were",
        "be",
        "do",
        "does",
        "did",
        "we",
        "i",
        "you",
        "our",
        "my",
        "your",
        "to",
        "of",
        "for",
        "in",
        "on",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "and",
        "or",
        "me",
        "us",
        "please",
        "there",
        "with",
        "at",
        "will",
        "would",
        "should",
        "could",
        "can",
        "may",
        "get",
        "got",
        "have",
        "has",
        "had",
        "any",
        "some",
        "about",
        "if",
        "so",
        "just",
        "really",
        "ok",
        "okay",
        "hi",
        "what",
        "which",
    ]
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return str(zhconv.convert(text, "zh-cn")).lower()


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    """Search tokens of a text (see the module docstring)."""
    out: list[str] = []
    for run in _CJK.findall(normalise(text)):
        if run[0] >= "\u3400":
            out.extend(c for c in run if c not in _STOP_ZH)
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in _STOP_EN:
            word = _stem(run)
            out.append(word)
            if len(word) >= 5:
                padded = f"^{word}$"
                out.extend("#" + padded[i : i + 3] for i in range(len(padded) - 2))
    return out


def _units(text: str) -> list[str]:
    """What a question is made of, for coverage: Chinese characters and English words."""
    out: list[str] = []
    for run in _CJK.findall(normalise(text)):
        if run[0] >= "\u3400":
            out.extend(c for c in run if c not in _STOP_ZH)
        elif run not in _STOP_EN:
            out.append(_stem(run))
    return out


def _compact(text: str) -> str:
    return " ".join(_units(text))


@dataclass(frozen=True, slots=True)
class Match:
    entry: FaqEntry | None
    """The entry to answer with, or None when the bot should not guess."""
    confidence: float
    suggestions: tuple[FaqEntry, ...]
    """The closest topics, best first (empty when the question is off topic)."""


class FaqMatcher:
    def __init__(
        self, entries: Sequence[FaqEntry], *, accept: float = ACCEPT, suggest: float = SUGGEST
    ) -> None:
        self.entries = list(entries)
        self.accept = accept
        self.suggest = suggest
        texts = [self._texts(e) for e in self.entries]
        corpus = [[t for text in group for t in tokens(text)] or ["\x00"] for group in texts]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._units = [frozenset(u for text in group for u in _units(text)) for group in texts]
        df = Counter(u for units in self._units for u in units)
        n = len(self.entries)
        self._idf = {u: math.log((n + 1) / (c + 0.5)) for u, c in df.items()}
        self._unknown_idf = math.log((n + 1) / 0.5)
        self._words = [sorted(u for u in units if u.isascii() and len(u) > 3) for units in self._units]
        self._examples = [[_compact(x) for xs in e.examples.values() for x in xs] for e in self.entries]

    @staticmethod
    def _texts(entry: FaqEntry) -> list[str]:
        topic = entry.topic if isinstance(entry.topic, str) else " ".join(entry.topic.values())
        examples = [x for xs in entry.examples.values() for x in xs]
        keywords = [k for ks in entry.keywords.values() for k in ks]
        return [topic, *examples, *keywords, *keywords]  # keywords count twice

    def _coverage(self, units: Iterable[str], i: int) -> float:
        """The rarity-weighted share of the question's units that entry ``i`` knows."""
        vocab, words = self._units[i], self._words[i]
        total = covered = 0.0
        for u in units:
            weight = self._idf.get(u, self._unknown_idf)
            total += weight
            if u in vocab:
                covered += weight
            elif u.isascii() and len(u) > 3 and words:
                hit = process.extractOne(u, words, scorer=fuzz.ratio, score_cutoff=80)
                if hit is not None:
                    covered += weight * hit[1] / 100
        return covered / total if total else 0.0

    def match(self, text: str) -> Match:
        query = tokens(text)
        units = _units(text)
        if not query or not units or not self.entries:
            return Match(None, 0.0, ())
        scores = self._bm25.get_scores(query)
        k = min(CANDIDATES, len(self.entries))
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        compact = " ".join(units)
        ranked: list[tuple[float, int]] = []
        for i in (int(i) for i in top):
            if scores[i] <= 0:
                continue
            similar = process.extractOne(compact, self._examples[i], scorer=fuzz.token_set_ratio)
            closeness = similar[1] / 100 if similar else 0.0
            ranked.append((0.65 * self._coverage(units, i) + 0.35 * closeness, i))
        if not ranked:
            return Match(None, 0.0, ())
        ranked.sort(reverse=True)
        best, index = ranked[0]
        suggestions = tuple(self.entries[i] for score, i in ranked[:3] if score >= self.suggest)
        entry = self.entries[index] if best >= self.accept else None
        return Match(entry, best, suggestions)
