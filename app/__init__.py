"""refstack: a flash-sale ticketing service built as a reference backend (see notes/README.md)."""
