"""The search lab: an inverted index built by hand over the demo events, ranked by TF-IDF and by BM25, so the
numbers behind notes/elasticsearch.md ("The inverted index", "Relevance: TF-IDF to BM25") can be printed and checked.
Run ``python -m lab.search``.
"""
