# SPDX-License-Identifier: Apache-2.0
"""`pip install` of the package works offline on Debian 12: a venv that sees the
system's packages (python3-zmq, python3-msgpack, python3-numpy, python3-torch from
scripts/deps), no build isolation (it would fetch setuptools), no package index.
Runs in CI with the rest of this suite (ctest's python_adapter)."""
import os
import shutil
import subprocess


from conftest import REPO


def test_pip_installs_the_package_offline_into_a_fresh_venv(tmp_path):
    src = tmp_path / "src"   # a copy: pip builds in the source tree, the repo stays clean
    shutil.copytree(REPO / "adapters" / "python", src,
                    ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")  # no network
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", str(src)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # Imported from outside the repository, it is the installed copy.
    probe = ("import orbit_adapter, orbit_adapter.callbacks; from orbit_adapter import Orbit; "
             "print(orbit_adapter.__file__, orbit_adapter.__version__)")
    r = subprocess.run([str(py), "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    path, version = r.stdout.split()
    assert path.startswith(str(venv)) and version == "0.1.0"
    # the basin tools come along: the console script and the bundled prompt corpus
    r = subprocess.run([str(venv / "bin" / "orbit-basins"), "--help"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "orbit-basins map" in r.stdout, r.stderr[-2000:]
    probe = "from orbit_basins.corpus import load_prompts; print(len(load_prompts()))"
    r = subprocess.run([str(py), "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and int(r.stdout) >= 50, r.stderr[-2000:]
