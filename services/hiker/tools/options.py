"""Argument types shared by the operator tools' options."""

from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    """An ``argparse`` type: an integer of 1 or more."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number
