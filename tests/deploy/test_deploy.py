"""deploy/evse.service: the systemd unit the README's Raspberry Pi section installs."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from server.config import Config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "evse.service"


def unit_service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_runs_the_checkouts_venv_with_its_env_file_and_restarts_on_failure():
    service = unit_service_section()
    checkout = service["WorkingDirectory"]
    assert service["ExecStart"] == f"{checkout}/.venv/bin/python -m server"
    assert service["EnvironmentFile"] == f"-{checkout}/.env"
    assert service["Restart"] == "on-failure"
    # the hardened service may write the default database's directory (data/evse.sqlite3)
    assert service["ReadWritePaths"] == f"{checkout}/{Config().db_path.parent}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit_when_installed_in_this_checkout(tmp_path):
    checkout = str(ROOT)
    installed = tmp_path / "evse.service"
    installed.write_text(
        UNIT.read_text().replace(unit_service_section()["WorkingDirectory"], checkout)
    )
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the checkout's .venv")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(installed)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # systemd warns on stderr about bad values
