"""An inverted index and two ranking functions, small enough to read in one sitting. See notes/elasticsearch.md.

Why build one: Elasticsearch (Lucene) and PostgreSQL's GIN index answer a word the same way, by looking the term up
in a sorted dictionary and reading its postings (which documents hold it, how often), never by reading documents.
Ranking is arithmetic over those postings. TF-IDF grows without bound with term frequency and ignores length; BM25
(Lucene's default since 6.0) saturates term frequency through ``k1`` and normalises by document length through
``b``. The analyzer here is the product's in miniature: split on anything but letters and digits, lowercase, fold
accents (NFKD, drop combining marks), as ``standard`` + ``lowercase`` + ``asciifolding`` do.

The documents are the demo events of app/seed.py, read from its source text (the lab imports nothing from app/).
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SEED = Path(__file__).resolve().parents[2] / "app" / "seed.py"
K1 = 1.2
B = 0.75
_WORD = re.compile(r"[^\W_]+")


def analyze(text: str) -> list[str]:
    """Tokens as the index stores them: words, lowercased, accents folded ("Zürich" → "zurich")."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return [word.lower() for word in _WORD.findall(folded)]


def demo_documents() -> list[str]:
    """Each demo event of app/seed.py as one text: title, venue, city."""
    tree = ast.parse(SEED.read_text())
    events = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EVENTS" for t in node.targets)
    )
    return [f"{title} {venue} {city}" for title, city, venue, *_ in ast.literal_eval(events)]


@dataclass
class InvertedIndex:
    """term → {document number: term frequency}, and each document's length in tokens."""

    postings: dict[str, dict[int, int]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, documents: list[str]) -> InvertedIndex:
        index = cls()
        for number, text in enumerate(documents):
            tokens = analyze(text)
            index.lengths.append(len(tokens))
            for term, count in Counter(tokens).items():
                index.postings.setdefault(term, {})[number] = count
        return index

    @property
    def average_length(self) -> float:
        return sum(self.lengths) / len(self.lengths)

    def idf(self, term: str) -> float:
        """Lucene's BM25 idf: rare terms weigh more, and it never goes negative."""
        n, df = len(self.lengths), len(self.postings.get(term, {}))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def tf_idf(self, query: str) -> dict[int, float]:
        scores: dict[int, float] = {}
        for term in analyze(query):
            for number, tf in self.postings.get(term, {}).items():
                scores[number] = scores.get(number, 0.0) + tf * self.idf(term)
        return scores

    def bm25(self, query: str, *, k1: float = K1, b: float = B) -> dict[int, float]:
        scores: dict[int, float] = {}
        for term in analyze(query):
            for number, tf in self.postings.get(term, {}).items():
                weight = self.idf(term) * bm25_tf(tf, self.lengths[number] / self.average_length, k1, b)
                scores[number] = scores.get(number, 0.0) + weight
        return scores


def bm25_tf(tf: int, relative_length: float, k1: float = K1, b: float = B) -> float:
    """BM25's term-frequency factor: tends to ``k1 + 1`` however often the term repeats; longer documents less."""
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * relative_length))
