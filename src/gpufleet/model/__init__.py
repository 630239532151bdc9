"""The typed, pure model of a GPU portfolio and the work placed on it (no I/O here)."""
