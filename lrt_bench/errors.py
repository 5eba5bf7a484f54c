"""The toolkit's user-facing error: one line that says what was wrong and what to do."""


class LRTError(ValueError):
    """Bad input or configuration. The message is a single line meant for the user."""
