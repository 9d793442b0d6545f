# SPDX-License-Identifier: Apache-2.0
"""OrbitdProcess: the launcher the benches and examples start orbitd with."""
import os
import pathlib

from conftest import TEST_CONFIG, orbitd_binary
from orbit_adapter.daemon_process import OrbitdProcess


def test_paths_relative_to_the_callers_directory_work_though_orbitd_runs_elsewhere(short_tmp, monkeypatch):
    # orbitd is started from its own workdir; a config, binary and journal folder given
    # relative to the caller's directory must still be found (a bench run with
    # `--config configs/default.toml` once failed with "cannot open file").
    caller = short_tmp / "caller"
    (caller / "etc").mkdir(parents=True)
    (caller / "etc" / "orbitd.toml").write_text(TEST_CONFIG)
    (caller / "bin").mkdir()
    os.symlink(orbitd_binary(), caller / "bin" / "orbitd")
    workdir = short_tmp / "w"
    workdir.mkdir(mode=0o700)
    monkeypatch.chdir(caller)
    d = OrbitdProcess(pathlib.Path("bin/orbitd"), "etc/orbitd.toml", workdir=workdir,
                      journal_dir="journal", log_level=None)
    try:
        d.start()
        assert d.alive()
        assert pathlib.Path(d.journal_dir) == caller / "journal"
    finally:
        d.kill()
