"""Search over events: one request and one page shape (app/search/page.py), answered by Elasticsearch
(app/search/es_search.py) or by PostgreSQL full-text search (app/search/postgres.py). Which one answers, and when,
is the use case's decision (app/services/search.py). See notes/elasticsearch.md.
"""
