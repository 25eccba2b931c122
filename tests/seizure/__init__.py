"""Helpers of tests/test_seizure.py: the flow, the copy, the attacker's search, the verdict."""
