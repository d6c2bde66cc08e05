"""The in-memory chain: the contract's semantics in Python, journaled to SQLite."""
