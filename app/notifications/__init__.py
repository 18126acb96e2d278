"""Notifications that leave the service: organizers' webhooks. See notes/security.md, "SSRF"."""
