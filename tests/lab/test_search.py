"""The search lab's claims, counted on the demo events: the analyzer folds accents, the inverted index holds each
term's postings, BM25 saturates term frequency and prefers the shorter of two documents TF-IDF cannot tell apart.
See notes/elasticsearch.md, "The inverted index" and "Relevance: TF-IDF to BM25".
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab.search.__main__ import report
from lab.search.inverted_index import K1, InvertedIndex, analyze, bm25_tf, demo_documents


def test_the_analyzer_splits_lowercases_and_folds_accents() -> None:
    assert analyze("Zürich: Brahms & Dvořák!") == ["zurich", "brahms", "dvorak"]
    assert analyze("Kraków Jazz-Night") == ["krakow", "jazz", "night"]


def test_the_index_names_every_document_holding_a_term_and_nothing_else() -> None:
    documents = demo_documents()
    index = InvertedIndex.build(documents)
    for term, postings in index.postings.items():
        assert set(postings) == {n for n, text in enumerate(documents) if term in analyze(text)}, term
    [zurich] = index.postings["zurich"]
    assert "Zürich" in documents[zurich]
    assert index.idf("zurich") > index.idf("berlin") > 0  # rarer weighs more


def test_bm25_saturates_where_tf_idf_keeps_growing() -> None:
    assert bm25_tf(1, 1.0) == pytest.approx(1.0)
    assert bm25_tf(1000, 1.0) < K1 + 1 < 1000
    assert bm25_tf(3, 3.0) < bm25_tf(3, 1.0)  # the same count in a longer document weighs less


def test_bm25_ranks_the_shorter_of_two_documents_tf_idf_ties() -> None:
    documents = demo_documents()
    index = InvertedIndex.build(documents)
    tf_idf, bm25 = index.tf_idf("fado lisbon"), index.bm25("fado lisbon")
    night, mariza = (next(n for n, d in enumerate(documents) if d.startswith(t)) for t in ("Fado Night", "Mariza"))
    assert tf_idf[night] == pytest.approx(tf_idf[mariza])
    assert bm25[night] > bm25[mariza]


def test_the_lab_prints_its_tables() -> None:
    assert [table.title.split(" ")[0] for table in report()] == ["postings", "query", "query", "query", "a"]
    run = subprocess.run([sys.executable, "-m", "lab.search"], capture_output=True, text=True, check=True, timeout=60)
    assert "Fado Night Coliseu Lisbon" in run.stdout
