"""The Dockerfile, compose.yaml and the systemd unit: their syntax, and that the commands they
run exist (CI has no Docker engine; `docker compose config` and `systemd-analyze verify` run
where they are installed)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from bot.cli import build_parser
from bot.settings import Settings, variables

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "gpt2bot.service"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip
# variables the image or services set for others than gpt2bot's settings
OTHER_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "HF_HOME", "MPLCONFIGDIR", "PIP_NO_CACHE_DIR",
                   "PIP_DISABLE_PIP_VERSION_CHECK"}  # fmt: skip


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


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed here",
)
def test_docker_compose_accepts_the_file():
    for profile in ([], ["--profile", "vllm"]):
        subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), *profile, "config", "--quiet"],
            check=True,
            timeout=60,
        )


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
