"""Intake: Zalo OA webhooks in, sealed tips and dispatch jobs out, in one transaction."""
