"""The command language of interactive mode and scripts."""

import pytest

from tools.simulator.commands import Command, CommandError, parse_command, parse_script

STATIONS = {1, 2, 3}


@pytest.mark.parametrize(
    "line, expected",
    [
        ("tap", Command("tap")),
        ("tap 2", Command("tap", station=2)),
        ("tap st2", Command("tap", station=2)),
        ("tap 04A1B2C3", Command("tap", uid="04A1B2C3")),
        ("tap VIRTUAL-2-A4F2E8 2", Command("tap", uid="VIRTUAL-2-A4F2E8", station=2)),
        ("stop 3", Command("stop", station=3)),
        ("EMERGENCY", Command("emergency")),
        ("load 16", Command("load", amps=16.0)),
        ("load 6.5 st1", Command("load", amps=6.5, station=1)),
        ("wait 0.5", Command("wait", seconds=0.5)),
        ("wait-for started", Command("wait-for", event="started", seconds=30.0)),
        (
            "wait-for <-stop 2 timeout=5",
            Command("wait-for", event="<-stop", station=2, seconds=5.0),
        ),
        ("quit  # bye", Command("quit")),
    ],
)
def test_commands_parse(line, expected):
    assert parse_command(line, STATIONS) == expected


@pytest.mark.parametrize("line", ["", "   ", "# only a comment"])
def test_blank_lines_and_comments_are_skipped(line):
    assert parse_command(line, STATIONS) is None


@pytest.mark.parametrize(
    "line, words",
    [
        ("fly", "unknown command"),
        ("stop 9", "not a simulated station"),
        ("load", "needs AMPS"),
        ("load -3", "between 0 and 80"),
        ("load nan", "between"),
        ("wait", "needs SECONDS"),
        ("wait soon", "must be a number"),
        ("wait-for", "needs an EVENT"),
        ("wait-for started 1 2", "unexpected"),
        ("tap A B C", "at most"),
        ("status 1 2", "unexpected"),
    ],
)
def test_bad_commands_say_what_is_wrong(line, words):
    with pytest.raises(CommandError, match=words):
        parse_command(line, STATIONS)


def test_a_bad_script_line_is_named_before_anything_runs():
    with pytest.raises(CommandError, match="line 3: unknown command 'tpa'"):
        parse_script("wait-for connected\n\ntpa\n", STATIONS)
    assert [n for n, _ in parse_script("# demo\ntap\n\nstop\n", STATIONS)] == [2, 4]
