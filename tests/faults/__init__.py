"""Fault injection: workers killed, Redis and PostgreSQL restarted under a stream of tips."""
