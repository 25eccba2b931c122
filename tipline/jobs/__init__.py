"""Background work on RQ: dispatch, outbound Zalo messages, and the outbox relay that feeds them."""
