"""Matching free questions to FAQ entries and to the flows' passages, in Simplified and
Traditional Chinese and English.

1. Normalise: NFKC, Traditional to Simplified (zhconv), Taiwan/Hong Kong words as the mainland's
   (稽核 as 审核), lower case; the words prospects say for the content's (the FAQ's ``synonyms``:
   计量器具 as 测量设备); an English word the content nearly uses, as that word (typos).
2. Tokens: Chinese characters and character bigrams (no segmenter needed), English words and,
   for longer words, character trigrams, so a misspelt word still shares most of its tokens.
3. Candidates: BM25 (bm25s) over one document per entry (its topic, examples and keywords).
4. Confidence for the best few candidates: how much of the question the entry's vocabulary
   covers, weighted by rarity (a question about the weather covers little of any entry), blended
   with the closest example's fuzzy similarity (rapidfuzz). Below a threshold the bot does not
   guess: it offers the closest topics instead. Questions like the content's ``out_of_scope``
   examples (other services, chatter) are not ours: when they are closest, nothing is answered.
5. Specific questions: the passages (``bot.faq.passages``: each line, list item and self-check
   condition of the flows) are searched the same way; a passage answers instead of the topic when
   it says more of the question than the topic's answer does (rare terms few items use). A
   question that names a scheme (its flow's ``aliases``) is answered from that scheme only; a
   topic whose answer is about another scheme gives way to the same step of the scheme asked
   about.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bm25s
import numpy as np
import zhconv
from rapidfuzz import fuzz, process

from bot.content.model import FaqEntry
from bot.faq.passages import Passage

if TYPE_CHECKING:
    from bot.content import Content

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
PASSAGE_PREFIX = "passage_"
"""The ids of the entries that stand for passages (``passage_12``)."""
PASSAGE_CANDIDATES = 12
PASSAGE_ACCEPT = 0.6
"""Coverage of the question's words by a passage (and its heading and scheme) from which it is
answered."""
PASSAGE_SPECIFIC = 4.0
"""What a passage must say of the question that the best topic does not (the summed rarity, among
the passages, of the terms they share: Chinese character pairs, English words): a specific question
names a thing that few items of the content talk about."""
PASSAGE_CLOSE = (0.5, 12.0)
"""...or a lower coverage where the passage says much more of the question than the topic does
(组织简介要写多少字: the profile, "about 1000 characters")."""
PASSAGE_RARE = 3.5
"""...and one of those terms must be rare among the passages (in a dozen of them at most): words
every other item uses ("audit", "question") do not make a question specific."""
PASSAGE_STRONG = (0.7, 9.0)
"""Coverage and specificity from which a passage answers even a question the topics would take
for out of scope (they know nothing of 配置审计报告; the materials list does)."""
PASSAGE_LEAD = 1.7
PASSAGE_DECISIVE = (0.35, 8.0)
"""...or a passage whose search score is well ahead of any other's (``PASSAGE_LEAD`` times the
next one's) and which holds this much of the question and says this much of it
(上线计划表要给审核老师看吗: the only line with 上线计划表, though the question says 老师)."""
_ASKING_ZH = frozenset("需要准备会看查吗什么哪些怎么嘛呢吧交做能不可以有没该得必须多少")
_ASKING_EN = frozenset(
    "how what when where who why whom whose long many much need needed required require requirement"
    " necessary must do check look ask want they there also still too question tell know explain"
    " wonder".split()
)
"""How a question asks (需要…吗, do they check…): not what it asks about, so a passage is not
expected to hold these words."""

_RUNS = re.compile(r"[\u3400-\u9fff]+|[a-z0-9]+")
_WORD = re.compile(r"[A-Za-z]+")
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


REGIONAL = (
    ("稽核", "审核"),
    ("查核", "检查"),
    ("资安", "信息安全"),
    ("资讯", "信息"),
    ("纪录", "记录"),
    ("训练", "培训"),
    ("品质", "质量"),
    ("品管", "质量管理"),
    ("营运", "运营"),
    ("影印", "复印"),
    ("证照", "证书"),
    ("个资", "个人信息"),
    ("几多钱", "多少钱"),
    ("几钱", "多少钱"),
)
"""Words of Taiwan and Hong Kong that the character conversion keeps, as the mainland says them
(稽核 is what a mainland text calls 审核)."""


@functools.lru_cache(maxsize=256)  # a match reads the same question several ways
def normalise(text: str) -> str:
    """NFKC, Simplified characters and mainland words, lower case."""
    text = str(zhconv.convert(unicodedata.normalize("NFKC", text), "zh-cn")).lower()
    for regional, mainland in REGIONAL:
        if regional in text:
            text = text.replace(regional, mainland)
    return text


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
        passages: Sequence[Passage] = (),
        schemes: Mapping[str, Sequence[str]] | None = None,
        titles: Mapping[str, Sequence[str]] | None = None,
        synonyms: Mapping[str, str] | None = None,
    ) -> None:
        """``passages``: the flows' passages, searched for specific questions; ``schemes``: each
        scheme flow's names (a question that names one is answered from it); ``titles``: each
        flow's title, which its passages are about; ``synonyms``: words of questions read as the
        content's words (计量器具 as 测量设备)."""
        self.entries = list(entries)
        self.out_of_scope = list(out_of_scope)
        self.passages = list(passages)
        self.schemes = dict(schemes or {})
        self.titles = dict(titles or {})
        self.synonyms = dict(synonyms or {})
        """What the matcher was built from (another one can be built with the same)."""
        said = {normalise(k): normalise(v) for k, v in self.synonyms.items() if k.strip()}
        self._said = said
        self._synonym = (
            re.compile(
                "|".join(
                    rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])" if k.isascii() else re.escape(k)
                    for k in sorted(said, key=len, reverse=True)
                )
            )
            if said
            else None
        )
        """The words prospects say, longest first (an English one as a whole word)."""
        if out_of_scope:  # a pseudo entry: when it is the closest, the question is not ours
            examples = {"": list(out_of_scope)}
            self.entries.append(
                FaqEntry.model_construct(id=OUT_OF_SCOPE, topic="", answer="", examples=examples)
            )
        self.accept = accept
        self.suggest = suggest
        self.coverage_weight = coverage_weight
        self.min_evidence = min_evidence
        written = [self._texts(e) for e in self.entries]
        read = self._content_words
        texts = [[read(text) for text in group] for group in written]
        """Each entry's texts as a question is read (synonyms as the words they stand for)."""
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
            [" ".join(units(read(x))) for xs in e.examples.values() for x in xs] for e in self.entries
        ]
        self._said_so = [
            {*examples, *(" ".join(units(read(k))) for ks in e.keywords.values() for k in ks)}
            for e, examples in zip(self.entries, self._examples, strict=True)
        ]
        """Each entry's examples and keywords as units: what a question of little words must be."""
        known = frozenset().union(
            *(v for e, v in zip(self.entries, self._units, strict=True) if e.id != OUT_OF_SCOPE)
        )
        self._passages = _PassageIndex(passages, titles or {}, schemes or {}, read)
        answers = [[read(a) for a in _texts_of(e.answer)] for e in self.entries]
        self._answer_terms = [frozenset(t for a in texts for t in terms(a)) for texts in answers]
        """What each entry's answer says (its terms, in every language)."""
        theirs = [v for e, v in zip(self.entries, self._units, strict=True) if e.id == OUT_OF_SCOPE]
        self._foreign = frozenset().union(*theirs) - known - self._passages.vocabulary
        """Words only the out-of-scope examples use (CE, SSL, 股, 吃): see ``_not_ours``."""
        self._schemes = sorted(
            ((_compact(read(alias)), flow) for flow, aliases in (schemes or {}).items() for alias in aliases),
            key=lambda pair: -len(pair[0]),
        )
        """(a scheme's name, its flow), the longest names first."""
        self._pairs, self._chars, self._known_words = _vocabulary(t for group in written for t in group)
        english = {w for w in self._known_words if w.isalpha() and len(w) >= 4}
        english |= {w for w in self._passages.vocabulary if w.isascii() and w.isalpha() and len(w) >= 4}
        self._english = sorted(english)
        """The English words the content uses: a misspelt word of a question is read as the
        closest of them."""
        self._spelt: dict[str, str] = {}

    @classmethod
    def of(cls, content: Content) -> FaqMatcher:
        """The matcher of ``content``: its FAQ, its out-of-scope examples and its passages."""
        from bot.faq.passages import passages

        titles = {
            fid: [content.localise(flow.title, locale) for locale in content.locales]
            for fid, flow in content.flows.items()
        }
        schemes = {
            fid: [alias for aliases in flow.aliases.values() for alias in aliases]
            for fid, flow in content.flows.items()
            if flow.kind == "scheme"
        }
        return cls(
            content.faq,
            out_of_scope=content.out_of_scope,
            passages=passages(content),
            schemes=schemes,
            titles=titles,
            synonyms=content.synonyms,
        )

    def scheme_of(self, text: str) -> str | None:
        """The scheme (flow id) ``text`` names, if it names one: each name found counts for its
        scheme, longest first, so "三体系（9001+14001+45001）" names the three systems."""
        rest = _compact(normalise(text))
        found: Counter[str] = Counter()
        for alias, flow in self._schemes:
            if alias and alias in rest:
                found[flow] += rest.count(alias)
                rest = rest.replace(alias, "\x00")
        if not found:
            return None
        [(first, n), *others] = found.most_common(2)
        return first if not others or others[0][1] < n else None

    @property
    def passage_entries(self) -> list[FaqEntry]:
        """The passages as entries (id ``passage_N``, the answer by locale, the step as link)."""
        return self._passages.entries

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

    def match(self, text: str, *, scheme: str | None = None) -> Match:
        """The answer to ``text``: a topic's, or a specific passage's. ``scheme``: the scheme the
        conversation is in (a question that names none is about it)."""
        text = self._content_words(self._spelling(text))
        query = tokens(text)
        question = units(text)
        if not query or not question or not self.entries or self._not_ours(question):
            return Match(None, 0.0, ())
        if all(u in _STOP_ZH or u in _STOP_EN for u in question):
            # Nothing but little words ("是", "在吗", "hi there"): only an example said just so
            # (a greeting) is an answer; anything else would be a guess.
            folded = " ".join(question)
            for entry, said in zip(self.entries, self._said_so, strict=True):
                if entry.id != OUT_OF_SCOPE and folded in said:
                    return Match(entry, 1.0, (entry,))
            return Match(None, 0.0, ())
        named = self.scheme_of(text)
        ranked = self._rank(query, question)
        if ranked and self.entries[ranked[0][1]].id == OUT_OF_SCOPE:
            # Not ours, unless one passage of the content says just what is asked (and the
            # out-of-scope examples are not sure).
            found = self._passages.nearest(text, question, query, frozenset(), scheme=named or scheme)
            if found is not None and (
                (ranked[0][0] < self.accept and found.strong)
                or (found.decisive and found.coverage > ranked[0][0])
            ):
                return Match(found.entry, found.coverage, ())
            return Match(None, 0.0, ())
        best, index = ranked[0] if ranked else (0.0, -1)
        suggestions = tuple(
            self.entries[i]
            for score, i in ranked[:3]
            if score >= self.suggest and self.entries[i].id != OUT_OF_SCOPE
        )
        sure = index >= 0 and best >= self.accept and self._evidence(question, index) >= self.min_evidence
        topic = self.entries[index] if sure else None
        # A topic whose answer is about another scheme than the one named: that scheme's passage.
        elsewhere = (
            topic is not None
            and named is not None
            and topic.link is not None
            and topic.link.split(".")[0] in self._passages.schemes
            and topic.link.split(".")[0] != named
        )
        if elsewhere:  # the same topic in the named scheme: the closest line of its step
            assert topic is not None and topic.link is not None and named is not None
            passage = self._passages.closest(query, question, f"{named}.{topic.link.split('.')[1]}")
        else:
            passage = self._passages.best(
                text,
                question,
                query,
                self._units[index] if sure else frozenset(),
                scheme=named or scheme,
                only=named is not None,
            )
        if (
            passage is not None
            and topic is not None
            and passage.entry.link == topic.link
            and self._passages.said(passage.entry, text) <= self._answer_terms[index]
        ):
            passage = None  # a line of the step the topic leads to, whose answer says what the
            # line says of the question ("每年都要年审吗"); else the line ("SWOT分析表要吗")
        if passage is not None:
            return Match(passage.entry, passage.coverage, suggestions)
        if elsewhere:
            return Match(None, best, suggestions)
        return Match(topic, best, suggestions)

    def _not_ours(self, question: list[str]) -> bool:
        """Whether the question uses words only the out-of-scope examples use: an English word
        (SSL, HACCP), two Chinese characters, or one in a short question (茅台股价多少; in a long
        one a lone character says too little: 计量器具 is about the audit)."""
        foreign = self._foreign.intersection(question)
        if not foreign:
            return False
        chinese = [u for u in foreign if not u.isascii()]
        return len(chinese) < len(foreign) or len(chinese) >= 2 or len(question) <= 8

    def _content_words(self, text: str) -> str:
        """``text`` normalised, with the words prospects say (``synonyms``) as the content says
        them: questions and the content's own texts alike are read so."""
        if self._synonym is None:
            return text
        return self._synonym.sub(lambda found: self._said[found.group(0)], normalise(text))

    def _spelling(self, text: str) -> str:
        """``text`` with each English word the content does not use, but nearly does, made that
        word ("certifcate", "suspnded", "documnets")."""
        if not text.isascii() and not re.search(r"[a-zA-Z]{5}", text):
            return text
        return _WORD.sub(self._respell, text)

    def _respell(self, found: re.Match[str]) -> str:
        word = found.group(0)
        lower = word.lower()
        if len(lower) < 5 or lower in _STOP_EN or _stem(lower) in self._known_words:
            return word
        fixed = self._spelt.get(lower)
        if fixed is None:
            hit = process.extractOne(lower, self._english, scorer=fuzz.ratio, score_cutoff=85)
            fixed = hit[0] if hit is not None else lower
            if len(self._spelt) < 10_000:
                self._spelt[lower] = fixed
        return fixed

    def _rank(self, query: list[str], question: list[str]) -> list[tuple[float, int]]:
        """The closest topics, best first, with their confidence."""
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
        ranked.sort(reverse=True)
        return ranked


def _texts_of(text: str | Mapping[str, str]) -> list[str]:
    return [text] if isinstance(text, str) else list(text.values())


def _compact(text: str) -> str:
    return "".join(normalise(text).split())


def terms(text: str) -> set[str]:
    """What identifies a thing in a text: Chinese character pairs (a lone character where a run
    has one), English words (stemmed) and numbers."""
    out: set[str] = set()
    for run in _RUNS.findall(normalise(text)):
        if _is_cjk(run):
            if len(run) == 1:
                out.add(run)
            out.update(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in _STOP_EN and run not in _ASKING_EN:
            out.add(_stem(run))
    return out


def _known(term: str, vocabulary: frozenset[str]) -> bool:
    """Whether a topic's vocabulary (its units) says ``term``: an English word, or each character
    of a Chinese pair."""
    if _is_cjk(term):  # little words (的, 有, 要) are in every question, said or not
        return all(c in vocabulary or c in _STOP_ZH or c in _ASKING_ZH for c in term)
    return term in vocabulary


def _content_units(question: list[str]) -> set[str]:
    """The units of a question but those that only make it a question."""
    return {u for u in question if u not in _ASKING_ZH and u not in _ASKING_EN}


@dataclass(frozen=True, slots=True)
class _Found:
    """A passage found for a question, and how well it answers it."""

    entry: FaqEntry
    coverage: float
    """The rarity-weighted share of the question's words the passage (or its heading) holds."""
    specific: float
    """What it says of the question that the topic does not (see ``_PassageIndex._specific``)."""
    lead: float
    """Its search score over the next passage's: a passage far ahead of every other one is the
    only place the content talks about what is asked."""

    @property
    def answers(self) -> bool:
        """Whether it answers the question rather than the topic (see ``PASSAGE_ACCEPT``)."""
        if self.decisive:
            return True
        if self.coverage >= PASSAGE_CLOSE[0] and self.specific >= PASSAGE_CLOSE[1]:
            return True
        return self.coverage >= PASSAGE_ACCEPT and self.specific >= PASSAGE_SPECIFIC

    @property
    def decisive(self) -> bool:
        """Far ahead of every other passage, holding much of the question and rare terms of it."""
        cover, specific = PASSAGE_DECISIVE
        return self.lead >= PASSAGE_LEAD and self.coverage >= cover and self.specific >= specific

    @property
    def strong(self) -> bool:
        """So well that it overrules the topics' "not ours" (``PASSAGE_STRONG``)."""
        return self.coverage >= PASSAGE_STRONG[0] and self.specific >= PASSAGE_STRONG[1]


class _PassageIndex:
    """The passages of the flows, searched for a question the topics answer only in general."""

    def __init__(
        self,
        passages: Sequence[Passage],
        titles: Mapping[str, Sequence[str]],
        schemes: Mapping[str, Sequence[str]],
        read: Callable[[str], str] = str,
    ) -> None:
        """``read``: a text as a question is read (see ``FaqMatcher._content_words``)."""
        self.passages = list(passages)
        self._naming = frozenset(
            t for names in (*titles.values(), *schemes.values()) for name in names for t in terms(read(name))
        )
        """Terms of the flows' titles and the schemes' names: naming a scheme picks its passages,
        it does not make a question specific."""
        self.schemes = frozenset(titles)
        self.entries = [
            FaqEntry.model_construct(
                id=f"{PASSAGE_PREFIX}{i}",
                topic=dict(p.heading) or "",
                answer=p.answer(),
                examples={},
                keywords={},
                link=p.link,
                lead=False,
            )
            for i, p in enumerate(self.passages)
        ]
        items = [[read(t) for t in p.text.values()] for p in self.passages]
        context = [[read(t) for t in (*p.heading.values(), *titles.get(p.flow, ()))] for p in self.passages]
        self._items = [frozenset(u for text in group for u in units(text)) for group in items]
        self._context = [frozenset(u for text in group for u in units(text)) for group in context]
        self._terms = [frozenset(t for text in group for t in terms(text)) for group in items]
        self.vocabulary = frozenset().union(*self._items, *self._context)
        n = len(self.passages)
        df = Counter(u for vocab in self._items for u in vocab)
        self._idf = {u: math.log((n + 1) / (c + 0.5)) for u, c in df.items()}
        self._unknown = math.log((n + 1) / 0.5)
        term_df = Counter(t for vocab in self._terms for t in vocab)
        self._term_idf = {t: math.log((n + 1) / (c + 0.5)) for t, c in term_df.items()}
        self._flows = [p.flow for p in self.passages]
        flows = np.array(self._flows, dtype=object)
        self._in_flow = {f: flows == f for f in set(self._flows)}
        self._in_scheme = np.isin(flows, list(self.schemes)) if self.passages else np.zeros(0, dtype=bool)
        self._bm25: bm25s.BM25 | None = None
        if self.passages:
            corpus = [
                [t for text in (*i, *c) for t in tokens(text)] or ["\x00"]
                for i, c in zip(items, context, strict=True)
            ]
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)

    def best(
        self,
        text: str,
        question: list[str],
        query: list[str],
        topic: frozenset[str],
        *,
        scheme: str | None = None,
        only: bool = False,
    ) -> _Found | None:
        """The passage that answers ``question`` specifically (see ``nearest``), if one does."""
        found = self.nearest(text, question, query, topic, scheme=scheme, only=only)
        return found if found is not None and found.answers else None

    def nearest(
        self,
        text: str,
        question: list[str],
        query: list[str],
        topic: frozenset[str],
        *,
        scheme: str | None = None,
        only: bool = False,
    ) -> _Found | None:
        """The passage that answers ``question`` most specifically, with its coverage and what it
        says that ``topic`` (the vocabulary of the topic that would answer) does not; see
        ``answers`` for whether it answers. ``scheme``: passages of that scheme come first;
        ``only``: no other scheme's passage answers (the question named it)."""
        if self._bm25 is None:
            return None
        scores = self._bm25.get_scores(query)
        if scheme is not None:
            mine = self._in_flow.get(scheme)
            if mine is not None:
                scores[mine] *= 1.5
                if only:
                    scores[self._in_scheme & ~mine] = 0.0
        k = min(PASSAGE_CANDIDATES, len(self.passages))
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        asked = _content_units(question) or set(question)
        total = sum(self._idf.get(u, self._unknown) for u in asked)
        if not total:
            return None
        named = terms(text)
        ranked: list[tuple[float, float, int]] = []
        for i in (int(i) for i in top):
            if scores[i] <= 0:
                continue
            items, context = self._items[i], self._context[i]
            covered = sum(self._idf.get(u, self._unknown) for u in asked if u in items or u in context)
            specific = self._specific(i, named, topic)
            bonus = 0.05 if scheme is not None and self._flows[i] == scheme else 0.0
            ranked.append((covered / total + bonus, specific, i))
        if not ranked:
            return None
        coverage, specific, i = max(ranked)
        others = [scores[j] for j in top if j != i]
        lead = float(scores[i] / max(others)) if others and max(others) > 0 else math.inf
        return _Found(self.entries[i], min(coverage, 1.0), specific, lead)

    def closest(self, query: list[str], question: list[str], link: str) -> _Found | None:
        """The line of step ``link`` closest to the question (a topic asked of another scheme
        than the one its answer is about: the same step of the scheme asked about)."""
        if self._bm25 is None:
            return None
        scores = self._bm25.get_scores(query)
        inside = [i for i, p in enumerate(self.passages) if p.link == link and scores[i] > 0]
        if not inside:
            return None
        i = max(inside, key=lambda i: scores[i])
        asked = _content_units(question) or set(question)
        total = sum(self._idf.get(u, self._unknown) for u in asked) or 1.0
        covered = sum(
            self._idf.get(u, self._unknown) for u in asked if u in self._items[i] or u in self._context[i]
        )
        return _Found(self.entries[i], min(covered / total, 1.0), 0.0, 0.0)

    def said(self, entry: FaqEntry, text: str) -> set[str]:
        """The terms of ``text`` the passage ``entry`` holds (but the schemes' names)."""
        i = int(entry.id.removeprefix(PASSAGE_PREFIX))
        return {t for t in terms(text) if t in self._terms[i] and t not in self._naming}

    def _specific(self, i: int, named: set[str], topic: frozenset[str]) -> float:
        """What passage ``i`` says of the terms ``named`` that ``topic`` does not: their summed
        rarity, if one of them is rare (``PASSAGE_RARE``); else nothing."""
        shared = [
            self._term_idf[t]
            for t in named
            if t in self._terms[i] and t not in self._naming and not _known(t, topic)
        ]
        return sum(shared) if shared and max(shared) >= PASSAGE_RARE else 0.0
