"""The typed API of the coordination contract: calls, views, events, errors, and their ABI."""
