"""``hiker parked list|replay``: inspect and replay parked sends (issue 3, in progress)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "replay"])


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("hiker parked is being written")
