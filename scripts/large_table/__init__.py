"""A PostgreSQL task table of a million rows, and the query plans of the hot queries on it
(scripts/scale.py, tests/integration/test_query_plans.py)."""
