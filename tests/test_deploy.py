"""The Dockerfile, compose.yaml and the systemd unit: their syntax, and that the commands they
run exist (CI has no Docker engine; `docker compose config` and `systemd-analyze verify` run
where they are installed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from bot.cli import build_parser
from bot.settings import Settings, variables
from tests.conftest import register_active

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "gpt2bot.service"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip
READY_WITHIN_S = 180  # imports, migrations and loading the model, on a busy 2-core machine
# variables the image or services set for others than gpt2bot's settings
OTHER_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "HF_HOME", "MPLCONFIGDIR", "PIP_NO_CACHE_DIR",
                   "PIP_DISABLE_PIP_VERSION_CHECK", "TORCH_EXTENSIONS_DIR"}  # fmt: skip


def settings_variables() -> set[str]:
    names = set(variables(Settings))
    for entry in entry_points(group="gpt2bot.platforms"):
        config_class = getattr(entry.load(), "config_class", None)
        if config_class is not None:
            names |= set(variables(config_class))
    return names


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, rest = current.partition(" ")
        lines.append((keyword, rest.strip()))
        current = ""
    assert current == "", "the Dockerfile ends inside a continued line"
    return lines


def exec_form(arguments: str) -> list[str]:
    value = yaml.safe_load(arguments)  # a JSON array is YAML too
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def check_gpt2bot_command(argv: list[str]) -> None:
    """`argv` runs our console script with arguments its parser accepts."""
    assert argv[0].endswith("gpt2bot"), argv
    build_parser().parse_args(argv[1:])  # SystemExit (a test failure) on unknown commands


def test_dockerfile_syntax_and_what_it_runs():
    instructions = dockerfile()
    assert {keyword for keyword, _ in instructions} <= INSTRUCTIONS
    assert instructions[0][0] == "ARG" and instructions[1][0] == "FROM"
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    args = {a.split("=")[0]: a.partition("=")[2] for k, a in instructions if k == "ARG"}
    assert args["VARIANT"] == "cpu" and args["TORCH_VERSION"] == "2.13.0"
    stage = dict(final)
    assert stage["USER"] not in ("root", "0")
    assert set(exec_form(stage["VOLUME"])) == {"/srv/gpt2bot/data", "/srv/gpt2bot/models"}
    entrypoint, command = exec_form(stage["ENTRYPOINT"]), exec_form(stage["CMD"])
    check_gpt2bot_command(entrypoint + command)
    assert command[:1] == ["run"]
    health = stage["HEALTHCHECK"]
    assert "--start-period=" in health
    check_gpt2bot_command(exec_form(health.split(" CMD ", 1)[1]))
    for keyword, arguments in instructions:
        if keyword == "COPY" and not arguments.startswith("--from"):
            for source in shlex.split(arguments)[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        if keyword == "RUN":  # the shell snippets parse
            script = re.sub(r"\$\{?\w+\}?", "x", arguments)
            subprocess.run(["bash", "-n", "-c", script], check=True)
        if keyword == "ENV":
            names = set(re.findall(r"(\w+)=", arguments))
            assert names <= settings_variables() | OTHER_VARIABLES, names
        if keyword == "RUN" and "pip install" in arguments and "/src[" in arguments:
            extras = re.search(r"/src\[([\w,]+)\]", arguments)
            assert extras is not None
            declared = (ROOT / "pyproject.toml").read_text()
            for extra in extras.group(1).split(","):
                assert re.search(rf"^{extra} = \[", declared, re.MULTILINE), extra


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".env", "data", "models", ".git"} <= ignored


def test_compose_file_runs_the_bot_and_an_optional_vllm():
    compose = yaml.safe_load(COMPOSE.read_text())
    bot, vllm = compose["services"]["bot"], compose["services"]["vllm"]
    check_gpt2bot_command(["gpt2bot", *bot["command"]])
    test = bot["healthcheck"]["test"]
    assert test[0] == "CMD"
    check_gpt2bot_command(test[1:])
    assert set(bot["environment"]) <= settings_variables()
    assert bot["environment"]["OPENAI_BASE_URL"].endswith("http://vllm:8000/v1}")
    assert "profiles" not in bot and vllm["profiles"] == ["vllm"]
    # vLLM starts on the published version (or VLLM_MODEL): its shell line parses
    assert vllm["entrypoint"] == ["/bin/sh", "-c"]
    subprocess.run(["sh", "-n", "-c", vllm["command"][0].replace("$$", "$")], check=True)
    assert set(bot["environment"]) >= {"OPENAI_BASE_URL", "OPENAI_MODEL_DIR"}
    for service in (bot, vllm):
        for volume in service["volumes"]:
            assert volume.split(":")[0] in compose["volumes"]
    assert bot["build"]["args"]["VARIANT"].endswith(":-cpu}")


def compose_command() -> list[str] | None:
    """Compose v2 (`docker compose`) when installed, else v1 (`docker-compose`, Debian 12's
    package, which scripts/test installs): the file is written for both."""
    if shutil.which("docker") is not None:
        version = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if version.returncode == 0:
            return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(compose_command() is None, reason="neither Compose v2 nor v1 is installed")
def test_docker_compose_accepts_the_file(tmp_path):
    # as an operator runs it: in a checkout whose .env was made from .env.example
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    compose = compose_command()
    assert compose is not None
    for profile in ([], ["--profile", "vllm"]):
        checked = subprocess.run(
            [*compose, "-f", str(tmp_path / "compose.yaml"), *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr


def unit_entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            section = line[1:-1]
            continue
        key, equals, value = line.partition("=")
        assert equals, f"not key=value: {line}"
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def test_systemd_unit_runs_gpt2bot_and_stops_it_gently():
    entries = unit_entries()
    assert {"Unit", "Service", "Install"} == {key.split(".")[0] for key in entries}
    check_gpt2bot_command(shlex.split(entries["Service.ExecStart"][0]))
    assert entries["Service.KillSignal"] == ["SIGTERM"]
    assert entries["Service.User"] != ["root"]
    for setting in entries["Service.Environment"]:
        assert setting.split("=")[0] in settings_variables() | OTHER_VARIABLES


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path):
    """`systemd-analyze verify` on a copy whose paths exist on this machine."""
    gpt2bot = str(Path(sys.executable).with_name("gpt2bot"))
    text = UNIT.read_text().replace("/opt/gpt2bot/.venv/bin/gpt2bot", gpt2bot)
    text = text.replace("/opt/gpt2bot", str(tmp_path)).replace("User=gpt2bot", "User=root")
    text = text.replace("Group=gpt2bot", "Group=root")
    unit = tmp_path / "gpt2bot.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in done.stderr.splitlines()
        if "gpt2bot.service" in line and "Documentation" not in line
    ]
    assert problems == [], done.stderr


@pytest.mark.slow
def test_the_image_command_serves_readyz(tmp_path: Path, tiny_model_dir: Path):
    """The Dockerfile's ENTRYPOINT + CMD with its ENV, run here from the image's working-folder
    defaults (./data, ./models), on 127.0.0.1 and free ports, with a tiny model already active
    (a first start would train the bootstrap model for minutes): /readyz answers 200 on the web
    port and on HEALTH_PORT, every log line is JSON under LOG_FORMAT=json, SIGTERM stops it."""
    stage = dict(dockerfile()[max(i for i, (k, _) in enumerate(dockerfile()) if k == "FROM") :])
    command = exec_form(stage["ENTRYPOINT"]) + exec_form(stage["CMD"])
    web_port, health_port = free_port(), free_port()
    command = [str(web_port) if arg == "8080" else arg for arg in command]
    command = ["127.0.0.1" if arg == "0.0.0.0" else arg for arg in command]
    assert command[0] == "gpt2bot" and str(web_port) in command
    image_env = dict(re.findall(r"(\w+)=(\S+)", stage["ENV"]))
    assert image_env["HEALTH_PORT"] == "8081"
    env = {
        **{k: v for k, v in image_env.items() if k != "PATH"},
        "HEALTH_PORT": str(health_port),
        "HEALTH_HOST": "127.0.0.1",
        "HF_HOME": str(tmp_path / "hf"),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "LOG_FORMAT": "json",
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
    }
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny-1")
    url = f"sqlite:///{tmp_path / 'data' / 'gpt2bot.db'}"  # the default, ./data/gpt2bot.db
    register_active(
        Settings.from_env({"DATABASE_URL": url}, dotenv_path=None), tmp_path / "models" / "tiny-1"
    )
    log_path = tmp_path / "stderr.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *command[1:]],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        for port in (health_port, web_port):
            assert wait_ready(port, process), log_path.read_text()[-3000:]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = log_path.read_text().splitlines()
    assert lines and all(json.loads(line)["message"] for line in lines)
    assert any("gpt2bot playground: http://127.0.0.1" in line for line in lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Poll /readyz until it answers 200; False when the process exits or time runs out."""
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                if answer.status == 200 and json.load(answer)["ready"]:
                    return True
        except OSError:  # not listening yet, or 503 while the model loads
            pass
        time.sleep(0.5)
    return False
