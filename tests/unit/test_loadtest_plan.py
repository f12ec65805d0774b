"""The load generator only ever targets this machine: a remote target is refused before any
traffic, by the plan and by the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.__main__ import main
from loadtest.plan import PlanError, check_loopback


@pytest.mark.parametrize("target", ["127.0.0.1:50051", "127.3.2.1:1", "localhost:50051",
                                    "[::1]:50051"])
def test_loopback_targets_are_accepted(target: str) -> None:
    assert check_loopback(target) == target


@pytest.mark.parametrize("target", ["10.0.0.7:50051", "192.168.1.2:50051", "8.8.8.8:53",
                                    "example.org:443", "[2001:db8::1]:50051", "127.0.0.1"])
def test_other_targets_are_refused(target: str) -> None:
    with pytest.raises(PlanError):
        check_loopback(target)


def test_cli_refuses_a_remote_target_before_sending_anything(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--target", "10.1.2.3:50051", "--run-dir", str(tmp_path)]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert not (tmp_path / "loadtest").exists()
