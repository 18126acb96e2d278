"""What a person typed into the search box, read once into words, phrases and exclusions that both backends obey.

Why our own reading instead of handing the raw text to each engine: Elasticsearch's ``query_string`` refuses
unbalanced quotes with a 400 and PostgreSQL's ``websearch_to_tsquery`` silently drops what it cannot read, so the
same text would mean two things (or one error) depending on which backend answered. Here the text becomes
``SearchQuery`` by rules that never fail: a word is a run of letters and digits (any script; punctuation separates
words, as both engines' analyzers do), ``"…"`` is a phrase, an unclosed quote runs to the end of the text, ``-word``
and ``-"a phrase"`` exclude, and the bare word ``or`` is dropped (both engines give it a meaning of their own).
What comes out is re-written for each engine from letters, digits, quotes and spaces only, so no input reaches an
engine's syntax. See notes/elasticsearch.md, "One query, two engines".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TERMS = 16
"""Words and phrases past this many are ignored: each one is a clause (a posting list) in both engines."""

_PIECE = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')
_WORD = re.compile(r"[^\W_]+")
_DROPPED = frozenset({"or"})

Phrase = tuple[str, ...]


def words_of(text: str) -> Phrase:
    """The letters-and-digits runs of ``text``, in order, without the dropped words."""
    return tuple(word for word in _WORD.findall(text) if word.lower() not in _DROPPED)


@dataclass(frozen=True)
class SearchQuery:
    """``words`` must all match (each may be misspelt or a prefix), each of ``phrases`` must match as a run of
    words, and nothing in ``excluded`` (single words are one-word phrases) may."""

    words: tuple[str, ...] = ()
    phrases: tuple[Phrase, ...] = ()
    excluded: tuple[Phrase, ...] = ()

    @property
    def looks_for_something(self) -> bool:
        """False for text with nothing to find (only punctuation, or only exclusions): the page is empty."""
        return bool(self.words or self.phrases)

    def websearch(self) -> str:
        """The positive part in ``websearch_to_tsquery``'s syntax: words, then quoted phrases."""
        return " ".join([*self.words, *(_quoted(phrase) for phrase in self.phrases)])

    def websearch_excluded(self) -> str:
        """The excluded words and phrases as alternatives (``a or "b c"``): a row matching any is left out."""
        return " or ".join(_quoted(phrase) for phrase in self.excluded)

    def all_words(self) -> str:
        """Every positive word, phrases' included, as one string: what trigram similarity compares with a row."""
        return " ".join([*self.words, *(word for phrase in self.phrases for word in phrase)])


def _quoted(phrase: Phrase) -> str:
    return phrase[0] if len(phrase) == 1 else '"' + " ".join(phrase) + '"'


def parse_query(text: str) -> SearchQuery:
    """Read ``text`` by the rules above; never raises."""
    words: list[str] = []
    phrases: list[Phrase] = []
    excluded: list[Phrase] = []
    for match in _PIECE.finditer(text):
        quoted_minus, quoted, bare_minus, bare = match.groups()
        if len(words) + len(phrases) + len(excluded) >= MAX_TERMS:
            break
        found = words_of(quoted if quoted is not None else bare)
        if not found:
            continue
        if (quoted_minus if quoted is not None else bare_minus) == "-":
            excluded.append(found)
        elif quoted is not None and len(found) > 1:
            phrases.append(found)
        else:
            words.extend(found)  # "a-b" or a one-word phrase: plain words
    return SearchQuery(words=tuple(words[:MAX_TERMS]), phrases=tuple(phrases), excluded=tuple(excluded))
