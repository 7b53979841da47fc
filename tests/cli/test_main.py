"""`dinolab --help`: the description names every command the parser has."""

import argparse

from dinolab.cli import DESCRIPTION, build_parser


def test_the_top_level_description_names_every_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {
        "pretrain",
        "config",
        "curate",
        "distill",
        "eval",
        "extract",
        "export",
        "finetune",
        "predict",
        "hub",
        "viz",
    }
    for name in sub.choices:
        assert f"({name}" in DESCRIPTION or f"; {name} " in DESCRIPTION, name


def _parsers(parser: argparse.ArgumentParser, path: str = "dinolab"):
    """(command path, parser) for the parser and every sub-command below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_flag_and_sub_command_has_a_help_text():
    """`--help` explains every argument; SUPPRESS hides old aliases on purpose."""
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):  # one help line per command
                missing += [f"{path} {c.dest}" for c in action._choices_actions if not c.help]
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing
