"""Redis: the client, later cache-aside, locks, rate limits and shared breaker state. See notes/redis.md."""
