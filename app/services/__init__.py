"""Use cases: what the API asks for, each one transaction on the primary. See notes/rest_design.md."""
