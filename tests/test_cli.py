"""The ionflow CLI: every stage listed, unbuilt stages say so, user errors are one line."""

import subprocess
import sys

from ionflow.cli import CORE_STAGES, STAGES, main


def test_help_lists_all_nine_stage_subcommands():
    out = subprocess.run([sys.executable, "-m", "ionflow.cli", "--help"], capture_output=True, text=True, check=True)
    for name in CORE_STAGES:
        assert f"    {name} " in out.stdout or f"    {name}\n" in out.stdout, name
    assert len(CORE_STAGES) == 9


def test_every_stage_has_help(capsys):
    for stage in STAGES:
        try:
            main([stage.name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert stage.purpose.split()[0] in capsys.readouterr().out


def test_no_stage_prints_help_and_fails(capsys):
    assert main([]) == 2
