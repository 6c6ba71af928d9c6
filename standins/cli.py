"""Small argparse helpers shared by the stand-ins' command lines."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value
