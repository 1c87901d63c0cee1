import json
import subprocess
import sys

import pytest

from pml import cli


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pml.cli", *args], capture_output=True, text=True, timeout=120)


def test_list_shows_parameters_and_profiles(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "01_introduction" in out and "n_seeds" in out and "smoke=20" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope", "--profile", "smoke"], "unknown chapter 'nope'"),
        (["run", "01_introduction", "--profile", "fast"], "unknown profile 'fast'"),
        (["run", "01_introduction", "--profile", "smoke", "-p", "bogus=1"], "unknown parameter 'bogus'"),
        (["run", "01_introduction", "--profile", "smoke", "-p", "n_seeds=abc"], "must be of type int"),
        (["run", "01_introduction", "--profile", "smoke", "-p", "n_seeds"], "expected name=value"),
        (["claims", "--profile", "fast"], "unknown profile 'fast'"),
        (["book", "--profile", "fast"], "unknown profile 'fast'"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, capsys):
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_claims_json_and_exit_code_on_missing_results(build_tmp, capsys):
    code = cli.main(["claims", "--profile", "paper", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1  # no chapter has run at this profile in the temporary build folder
    assert rows and {"id", "chapter", "statement", "paper", "measured", "verdict"} <= set(rows[0])
    assert {r["verdict"] for r in rows} == {"missing (chapter not run at this profile)"}


def test_console_entry_point_help():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "claims" in proc.stdout and "bench" in proc.stdout
