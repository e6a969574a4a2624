"""What the test modules share: the checkout they test, and the statements that every test of a job repeats."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
