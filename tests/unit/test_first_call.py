"""The README's first API call is the one `make up` prints, line for line: the venv's buf,
the token from the run folder's tokens file, the default gateway address."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from cluster import control
from cluster.run_folder import RunFolder
from cluster.tokens import resolve
from cluster.topology import plan

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_first_call() -> list[str]:
    """The commands after `make up` in the README's quick start."""
    block = re.search(r"```sh\nmake up [^\n]*\n(.*?)```", README.read_text(), re.S)
    assert block, "README quick start: no ```sh block starting with `make up`"
    return block.group(1).strip().splitlines()


def test_make_up_prints_the_readme_first_call(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the run folder is ./run, as with `make up`
    run = RunFolder(tmp_path / "run")
    run.create()
    tokens = resolve(run.tokens_file, {})
    out = io.StringIO()
    control._print_running(run, plan(run, {}, tokens), tokens, out)

    printed = [line.removeprefix("  ")
               for line in out.getvalue().split("Try it")[1].splitlines()[1:]]
    # From the repository, buf is .venv/bin/buf; from this test's folder, its full path.
    buf = Path(sys.executable).parent / "buf"
    expected = [line.replace(".venv/bin/buf", str(buf) if buf.exists() else "buf")
                for line in readme_first_call()]
    assert printed[:len(expected)] == expected


@pytest.mark.parametrize("setting", ["GATEWAY_TLS_CERT", "GATEWAY_TLS_KEY",
                                     "INTERNAL_TLS_CERT", "INTERNAL_TLS_CA"])
def test_make_up_refuses_the_gateways_tls_settings_saying_where_tls_belongs(
        tmp_path: Path, setting: str) -> None:
    run = RunFolder(tmp_path / "run")
    run.create()
    tokens = resolve(run.tokens_file, {})
    with pytest.raises(SystemExit, match=f"unset .*{setting}.*docker-compose.tls.yml"):
        plan(run, {setting: "/etc/pairwise/tls/gateway.pem"}, tokens)
