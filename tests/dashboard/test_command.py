"""``dlv dashboard``: registered, documented, and Dash stays out of ``import provdb``."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from provdb.cli import cli


def test_dashboard_command_is_registered_and_documented() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--help"])
    assert result.exit_code == 0
    for option in ("--hub", "--token", "DLV_HUB_TOKEN", "--host", "--port", "read-only"):
        assert option in result.output


def test_hub_mode_refuses_a_url_that_is_not_http() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--server", "ftp://hub.example"])
    assert result.exit_code == 1
    assert "starts with http:// or https://" in result.output


def test_the_cli_does_not_import_dash() -> None:
    code = "import provdb, provdb.cli, sys; print('dash' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_hub_token_defaults_to_the_one_dlv_login_saved_for_that_url(tmp_path, monkeypatch):
    from provdb.cli.dashboard import _saved_token
    from provdb.hub.client import save_credentials

    monkeypatch.setenv("DLV_CONFIG_DIR", str(tmp_path))
    assert _saved_token("http://hub:5000") is None  # nothing saved
    save_credentials("http://hub:5000/", "dlvh_saved")
    assert _saved_token("http://hub:5000") == "dlvh_saved"
    assert _saved_token("http://elsewhere:5000") is None  # never sent to another hub
