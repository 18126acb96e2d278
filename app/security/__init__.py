"""Password hashing, access tokens and authorization rules. See notes/security.md."""
