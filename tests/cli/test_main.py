"""`dinolab --help`: the description names every command the parser has."""

import argparse

from dinolab.cli import DESCRIPTION, build_parser


def test_the_top_level_description_names_every_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"pretrain", "config", "eval", "extract", "export", "hub", "viz"}
    for name in sub.choices:
        assert f"({name}" in DESCRIPTION or f"; {name} " in DESCRIPTION, name
