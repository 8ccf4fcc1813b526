"""Matching free questions to FAQ entries, in Simplified and Traditional Chinese and English.

1. Normalise: NFKC, Traditional to Simplified (zhconv), lower case.
2. Tokens: Chinese characters and character bigrams (no segmenter needed), English words and,
   for longer words, character trigrams, so a misspelt word still shares most of its tokens.
3. Candidates: BM25 (bm25s) over one document per entry (its topic, examples and keywords).
4. Confidence for the best few candidates: how much of the question the entry's vocabulary
   covers, weighted by rarity (a question about the weather covers little of any entry), blended
   with the closest example's fuzzy similarity (rapidfuzz). Below a threshold the bot does not
   guess: it offers the closest topics instead. Questions like the content's ``out_of_scope``
   examples (other services, chatter) are not ours: when they are closest, nothing is answered.
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

ACCEPT = 0.45
"""Confidence from which the best entry is answered."""
SUGGEST = 0.35
"""Confidence from which entries are offered as suggestions (below: off topic)."""
COVERAGE_WEIGHT = 0.65
"""Share of the confidence that is coverage; the rest is the closest example's similarity."""
UNKNOWN_FACTOR = 1.5
"""How much a word the whole FAQ never uses counts, relative to a word used by one entry."""
MIN_EVIDENCE = 2.0
"""A question must share this much (summed rarity) with an entry to be answered with it: "about
the certificate" says too little to pick one entry."""
CANDIDATES = 6
OUT_OF_SCOPE = "__out_of_scope__"

_RUNS = re.compile(r"[\u3400-\u9fff]+|[a-z0-9]+")
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


_PIECES = re.compile(r"[\u3400-\u9fff]+|[a-z0-9]+|[^\u3400-\u9fffa-z0-9]")


def _vocabulary(texts: Iterable[str]) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Chinese character pairs, characters and English words (stemmed) of the FAQ's texts."""
    pairs: set[str] = set()
    chars: set[str] = set()
    words: set[str] = set()
    for text in texts:
        for run in _RUNS.findall(normalise(text)):
            if _is_cjk(run):
                chars.update(run)
                pairs.update(run[i : i + 2] for i in range(len(run) - 1))
            else:
                words.add(_stem(run))  # numbers too: 9001, 27001 (a phone number is never there)
    return frozenset(pairs), frozenset(chars), frozenset(words)


def _is_cjk(run: str) -> bool:
    return run[0] >= "\u3400"


def tokens(text: str) -> list[str]:
    """Search tokens of a text (see the module docstring)."""
    out: list[str] = []
    for run in _RUNS.findall(normalise(text)):
        if _is_cjk(run):
            out.extend(c for c in run if c not in _STOP_ZH or len(run) <= 2)
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in _STOP_EN:
            word = _stem(run)
            out.append(word)
            if len(word) >= 5:
                padded = f"^{word}$"
                out.extend("#" + padded[i : i + 3] for i in range(len(padded) - 2))
    return out


def units(text: str) -> list[str]:
    """What a question is made of, for coverage: Chinese characters and English words (all of
    them when the question is nothing but little words, such as 在吗 or "hi there")."""
    out: list[str] = []
    runs = _RUNS.findall(normalise(text))
    for run in runs:
        if _is_cjk(run):
            out.extend(c for c in run if c not in _STOP_ZH)
        elif run not in _STOP_EN:
            out.append(_stem(run))
    return out or [u for run in runs for u in (list(run) if _is_cjk(run) else [run])]


@dataclass(frozen=True, slots=True)
class Match:
    entry: FaqEntry | None
    """The entry to answer with, or None when the bot should not guess."""
    confidence: float
    suggestions: tuple[FaqEntry, ...]
    """The closest topics, best first (empty when the question is off topic)."""


class FaqMatcher:
    def __init__(
        self,
        entries: Sequence[FaqEntry],
        *,
        out_of_scope: Sequence[str] = (),
        accept: float = ACCEPT,
        suggest: float = SUGGEST,
        coverage_weight: float = COVERAGE_WEIGHT,
        unknown_factor: float = UNKNOWN_FACTOR,
        min_evidence: float = MIN_EVIDENCE,
    ) -> None:
        self.entries = list(entries)
        if out_of_scope:  # a pseudo entry: when it is the closest, the question is not ours
            examples = {"": list(out_of_scope)}
            self.entries.append(
                FaqEntry.model_construct(id=OUT_OF_SCOPE, topic="", answer="", examples=examples)
            )
        self.accept = accept
        self.suggest = suggest
        self.coverage_weight = coverage_weight
        self.min_evidence = min_evidence
        texts = [self._texts(e) for e in self.entries]
        corpus = [[t for text in group for t in tokens(text)] or ["\x00"] for group in texts]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._units = [frozenset(u for text in group for u in units(text)) for group in texts]
        df = Counter(u for vocab in self._units for u in vocab)
        n = len(self.entries)
        self._idf = {u: math.log((n + 1) / (c + 0.5)) for u, c in df.items()}
        self._unknown_idf = unknown_factor * math.log((n + 1) / 0.5)
        self._words = [sorted(u for u in vocab if u.isascii() and len(u) > 3) for vocab in self._units]
        self._examples = [
            [" ".join(units(x)) for xs in e.examples.values() for x in xs] for e in self.entries
        ]
        known = frozenset().union(
            *(v for e, v in zip(self.entries, self._units, strict=True) if e.id != OUT_OF_SCOPE)
        )
        self._foreign = frozenset().union(*(v for e, v in zip(self.entries, self._units, strict=True)
                                            if e.id == OUT_OF_SCOPE)) - known  # fmt: skip
        """Words only the out-of-scope examples use (CE, SSL, 签证...): a question with one is not ours."""
        self._pairs, self._chars, self._known_words = _vocabulary(t for group in texts for t in group)

    def redact(self, text: str) -> str:
        """The question with only what the FAQ's questions say (its topics, examples and
        keywords): each Chinese character that forms a pair they use with a neighbour, each
        English word or number they use; anything
        else (a name, a company, a number, an address) becomes "…". For the operators' list of
        questions the bot could not answer, which must carry no personal data."""
        out: list[str] = []
        for piece in _PIECES.findall(normalise(text)):
            if _is_cjk(piece):
                out.extend(
                    c
                    if (i > 0 and piece[i - 1 : i + 1] in self._pairs)
                    or piece[i : i + 2] in self._pairs
                    or (len(piece) == 1 and (c in self._chars or c in _STOP_ZH))
                    else "…"
                    for i, c in enumerate(piece)
                )
            elif piece[0].isascii() and piece[0].isalnum():
                known = piece in _STOP_EN or _stem(piece) in self._known_words
                out.append(piece if known else "…")
            elif piece.isprintable() or piece in " \n":  # punctuation; not a control character
                out.append(piece)
        return re.sub(r"…+", "…", "".join(out)).strip()

    @staticmethod
    def _texts(entry: FaqEntry) -> list[str]:
        topic = entry.topic if isinstance(entry.topic, str) else " ".join(entry.topic.values())
        examples = [x for xs in entry.examples.values() for x in xs]
        keywords = [k for ks in entry.keywords.values() for k in ks]
        return [topic, *examples, *keywords, *keywords]  # keywords count twice

    def _evidence(self, question: Iterable[str], i: int) -> float:
        """How much the question says that entry ``i`` knows: the rarity of the units they share."""
        vocab = self._units[i]
        return sum(self._idf.get(u, 0.0) for u in set(question) if u in vocab)

    def _coverage(self, question: Iterable[str], i: int) -> float:
        """The rarity-weighted share of the question's units that entry ``i`` knows."""
        vocab, words = self._units[i], self._words[i]
        total = covered = 0.0
        for u in question:
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
        question = units(text)
        if not query or not question or not self.entries or not self._foreign.isdisjoint(question):
            return Match(None, 0.0, ())
        if all(u in _STOP_ZH or u in _STOP_EN for u in question):
            # Nothing but little words ("是", "在吗", "hi there"): only an example said just so
            # (a greeting) is an answer; anything else would be a guess.
            folded = " ".join(question)
            for entry, examples in zip(self.entries, self._examples, strict=True):
                if entry.id != OUT_OF_SCOPE and folded in examples:
                    return Match(entry, 1.0, (entry,))
            return Match(None, 0.0, ())
        scores = self._bm25.get_scores(query)
        k = min(CANDIDATES, len(self.entries))
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        compact = " ".join(question)
        w = self.coverage_weight
        ranked: list[tuple[float, int]] = []
        for i in (int(i) for i in top):
            if scores[i] <= 0:
                continue
            similar = process.extractOne(compact, self._examples[i], scorer=fuzz.token_set_ratio)
            closeness = similar[1] / 100 if similar else 0.0
            ranked.append((w * self._coverage(question, i) + (1 - w) * closeness, i))
        if not ranked:
            return Match(None, 0.0, ())
        ranked.sort(reverse=True)
        best, index = ranked[0]
        if self.entries[index].id == OUT_OF_SCOPE:
            return Match(None, 0.0, ())
        suggestions = tuple(
            self.entries[i]
            for score, i in ranked[:3]
            if score >= self.suggest and self.entries[i].id != OUT_OF_SCOPE
        )
        sure = best >= self.accept and self._evidence(question, index) >= self.min_evidence
        return Match(self.entries[index] if sure else None, best, suggestions)
