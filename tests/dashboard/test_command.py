"""``dlv dashboard``: registered, documented, and Dash stays out of ``import provdb``."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from provdb.cli import cli


def test_dashboard_command_is_registered_and_documented() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--help"])
    assert result.exit_code == 0
    for option in ("--hub", "--host", "--port", "read-only"):
        assert option in result.output


def test_hub_mode_says_it_is_not_supported() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--hub", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "--hub is not supported yet" in result.output


def test_the_cli_does_not_import_dash() -> None:
    code = "import provdb, provdb.cli, sys; print('dash' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "False"
