"""scripts/setup installs only when needed (so a second start works offline) and gets the venv
module on a fresh Debian. Run on a copy of the scripts, with stand-ins for python3, pip,
apt-get and id on PATH: nothing is installed and no network is used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# python3: `-m venv DIR` makes DIR/bin/python (the pip stand-in) unless NO_VENV is set;
# anything else runs the real interpreter (the script's version checks)
PYTHON3 = """#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  if [ -n "${NO_VENV:-}" ] && [ ! -f "$LOG.apt" ]; then
    mkdir -p "$3"; echo "The virtual environment was not created: ensurepip is not available" >&2
    exit 1
  fi
  mkdir -p "$3/bin"; cp "$STUBS/venv-python" "$3/bin/python"; exit 0
fi
exec "$REAL_PYTHON" "$@"
"""
# .venv/bin/python: records pip calls; `pip install -e` makes the gpt2bot script
VENV_PYTHON = """#!/usr/bin/env bash
[ "$#" = 2 ] && [ "$1" = "-c" ] && exit 0
echo "$*" >>"$LOG"
script="$(dirname "$0")/gpt2bot"
case "$*" in *"install -q -e"*) touch "$script"; chmod +x "$script";; esac
"""
APT_GET = """#!/usr/bin/env bash
echo "apt-get $*" >>"$LOG.apt"
"""
ID = """#!/usr/bin/env bash
echo "${FAKE_UID:-0}"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup", repo / "scripts" / "setup")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in {
        "python3": PYTHON3,
        "venv-python": VENV_PYTHON,
        "apt-get": APT_GET,
        "id": ID,
    }.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "STUBS": str(stubs),
        "REAL_PYTHON": sys.executable,
        "LOG": str(tmp_path / "pip.log"),
        "HOME": str(tmp_path),
    }
    return repo, env


def setup(checkout: tuple[Path, dict[str, str]], *args: str, **env: str) -> tuple[int, str]:
    repo, base = checkout
    done = subprocess.run(
        ["bash", "scripts/setup", *args],
        cwd=repo,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr


def pip_calls(checkout: tuple[Path, dict[str, str]]) -> list[str]:
    log = Path(checkout[1]["LOG"])
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_a_second_start_installs_nothing_until_pyproject_changes(checkout):
    assert setup(checkout)[0] == 0
    first = pip_calls(checkout)
    assert "-m pip install -q torch==2.13.0" in first and "-m pip install -q -e ." in first

    code, stderr = setup(checkout)
    assert code == 0 and pip_calls(checkout) == []  # no package index needed: works offline
    assert stderr == ""

    assert setup(checkout, "dev")[0] == 0  # the test tools were not installed yet
    assert "-m pip install -q -e .[dev]" in pip_calls(checkout)
    assert setup(checkout)[0] == 0 and setup(checkout, "dev")[0] == 0
    assert pip_calls(checkout) == []  # dev includes what `scripts/run` needs

    pyproject = checkout[0] / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# a new dependency\n")
    assert setup(checkout)[0] == 0
    assert "-m pip install -q -e ." in pip_calls(checkout)


def test_a_missing_venv_module_is_installed_with_apt_as_root(checkout):
    code, stderr = setup(checkout, NO_VENV="1")
    assert code == 0, stderr
    apt = Path(checkout[1]["LOG"] + ".apt").read_text()
    assert "apt-get install -y -qq python" in apt and "-venv" in apt
    assert "installing Debian's python" in stderr
    assert "-m pip install -q -e ." in pip_calls(checkout)


def test_without_root_it_says_exactly_what_to_install(checkout):
    code, stderr = setup(checkout, NO_VENV="1", FAKE_UID="1000")
    assert code == 1
    assert "sudo apt-get install python3-venv" in stderr
    assert not Path(checkout[1]["LOG"] + ".apt").exists()
    assert not (checkout[0] / ".venv").exists()  # no half-made venv left to trip the next run


# apt-get "installs" PostgreSQL: server stand-ins under $PG_LIB/15/bin that log their calls
APT_GET_POSTGRES = """#!/usr/bin/env bash
echo "apt-get $*" >>"$LOG.apt"
case "$*" in *"install"*"postgresql"*)
  mkdir -p "$PG_LIB/15/bin"
  for tool in initdb pg_ctl; do
    printf '#!/usr/bin/env bash\\necho "%s $*" >>"$LOG.pg"\\n' "$tool" >"$PG_LIB/15/bin/$tool"
    chmod +x "$PG_LIB/15/bin/$tool"
  done;;
esac
"""
SU = """#!/usr/bin/env bash
exec bash -c "${@: -1}"
"""
CHOWN = "#!/usr/bin/env bash\n"  # also pg_lsclusters: no packaged cluster to stop here


def test_postgres_server_is_installed_when_missing_then_stopped(checkout, tmp_path: Path):
    repo, env = checkout
    shutil.copy(ROOT / "scripts" / "test-postgres", repo / "scripts" / "test-postgres")
    stubs = Path(env["STUBS"])
    stand_ins = {"apt-get": APT_GET_POSTGRES, "su": SU, "chown": CHOWN, "pg_lsclusters": CHOWN}
    for name, text in stand_ins.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    env = {**env, "PG_LIB": str(tmp_path / "pg-lib"), "TEST_PG_PORT": "5999"}
    data = tmp_path / "pg-data"

    def script(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "scripts/test-postgres", *args],
            cwd=repo,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = script("start", str(data), FAKE_UID="1000")
    assert refused.returncode == 0 and refused.stdout == ""  # the tests skip, and it says why
    assert "apt-get install postgresql" in refused.stderr

    started = script("start", str(data))
    assert started.returncode == 0, started.stderr
    assert started.stdout == "postgresql+psycopg://postgres@127.0.0.1:5999/postgres\n"
    assert "apt-get install -y -qq postgresql" in Path(env["LOG"] + ".apt").read_text()
    (data / "data").mkdir(exist_ok=True)
    (data / "data" / "postmaster.pid").write_text("1\n")  # as a running server leaves it
    assert script("stop", str(data)).returncode == 0
    calls = Path(env["LOG"] + ".pg").read_text().splitlines()
    assert calls[0].startswith("initdb -D") and "start" in calls[1]
    assert calls[-1].startswith("pg_ctl -D") and calls[-1].endswith("stop")
    assert not data.exists()
