"""Command-line options every study shares: ``--quick`` runs it at toy size as a smoke test."""

from __future__ import annotations

import argparse


def study_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the study's docstring, with ``--quick`` already added."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="toy size, seconds: a smoke test whose results go to a scratch folder, never over the committed ones",
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None, quick: dict) -> argparse.Namespace:
    """Parse ``argv``; with ``--quick``, the values in ``quick`` replace the parsed ones."""
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(quick)
    return args
