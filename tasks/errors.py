"""The two kinds of task failure: worth retrying, or final."""
from __future__ import annotations


class TransientError(Exception):
    """The world may be different in a moment (a network blip, a busy provider): retry with backoff."""


class PermanentError(Exception):
    """Retrying cannot help (bad data, a decline): record it and stop; never retried."""
