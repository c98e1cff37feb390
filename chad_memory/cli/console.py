"""What the command says to the person at the terminal.

Its own module because every command group speaks the same way: progress and errors on
stderr, results alone on stdout.
"""

from __future__ import annotations

import sys


def _say(message: str) -> None:
    """Progress for people at a terminal; stderr so stdout stays parseable."""
    print(f"chad-memory: {message}", file=sys.stderr, flush=True)
