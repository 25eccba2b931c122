"""Zalo: the outbound OA API client, OA tokens, and a simulator of Zalo's servers."""
