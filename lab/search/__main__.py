"""``python -m lab.search``: the demo events' inverted index, and TF-IDF beside BM25. See notes/elasticsearch.md."""

from __future__ import annotations

from lab.search.inverted_index import InvertedIndex, bm25_tf, demo_documents
from lab.table import Table

TERMS = ("berlin", "lisbon", "fado", "zurich", "live")
QUERIES = ("fado lisbon", "zurich", "live berlin")


def report() -> list[Table]:
    documents = demo_documents()
    index = InvertedIndex.build(documents)
    postings = Table(
        f"postings of a few terms ({len(documents)} demo events, {len(index.postings)} distinct terms)",
        ("term", "df", "idf", "postings (event: tf)"),
        [
            (term, len(index.postings.get(term, {})), index.idf(term), _postings(index.postings.get(term, {})))
            for term in TERMS
        ],
    )
    rankings = []
    for query in QUERIES:
        tf_idf, bm25 = index.tf_idf(query), index.bm25(query)
        rows = [(documents[n], tf_idf.get(n, 0.0), score) for n, score in sorted(bm25.items(), key=lambda kv: -kv[1])]
        rankings.append(Table(f"query {query!r}", ("event", "tf-idf", "bm25"), rows))
    saturation = Table(
        "a term repeated: TF-IDF grows with tf, BM25 saturates towards k1 + 1 = 2.2 (average-length document)",
        ("tf", "tf-idf factor", "bm25 factor", "bm25, document 3x average length"),
        [(tf, float(tf), bm25_tf(tf, 1.0), bm25_tf(tf, 3.0)) for tf in (1, 2, 3, 5, 10, 100)],
    )
    return [postings, *rankings, saturation]


def _postings(postings: dict[int, int]) -> str:
    return " ".join(f"{number}:{tf}" for number, tf in sorted(postings.items()))


def main() -> None:
    for table in report():
        print(f"{table.render()}\n")


if __name__ == "__main__":
    main()
