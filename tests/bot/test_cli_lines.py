"""`--server PLATFORM:ID` on `gpt2bot models`, `train`, `generate` and `ab`, end to end on a tiny
model: the owners enable a server's line, train it from a file, and `generate --server` reports
the version that server is served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from storage import AuditRepository, Database
from tests.bot.test_cli_learning import env_file  # noqa: F401  (a fixture)

KEY = "discord:1234"


def _run(capsys: pytest.CaptureFixture[str], env: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--env-file", str(env), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_server_line_from_the_command_line(
    env_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "a.txt"
    data.write_text(
        "\n".join(f"The lighthouse keeper {i} counts ships at night." for i in range(16))
    )

    code, _, err = _run(capsys, env_file, "train", "--server", KEY, "--data", str(data))
    assert code == 1 and "has no model line of its own" in err and "Traceback" not in err
    code, _, err = _run(capsys, env_file, "models", "enable")
    assert code == 1 and "name the server" in err
    with pytest.raises(SystemExit) as bad:
        main(["--env-file", str(env_file), "models", "list", "--server", "1234"])
    assert bad.value.code == 2 and "PLATFORM:ID" in capsys.readouterr().err

    code, out, _ = _run(capsys, env_file, "models", "enable", "--server", KEY, "--json")
    assert code == 0 and json.loads(out)["enabled"] is True
    code, out, err = _run(
        capsys, env_file, "train", "--server", KEY, "--data", str(data), "--epochs", "1", "--json"
    )
    assert code == 0, err
    version = json.loads(out)["model_version"]
    code, out, err = _run(capsys, env_file, "models", "use", version, "--server", KEY, "--force")
    assert code == 0 and f"{version} the active version of {KEY}'s line" in err
    assert f"* {version}" in out

    generate = ["generate", "The keeper", "--max-new-tokens", "3", "--json"]
    code, out, err = _run(capsys, env_file, *generate, "--server", KEY)
    assert code == 0, err
    assert json.loads(out)["model_version"] == version  # the version that server is served
    code, out, _ = _run(capsys, env_file, *generate, "--server", "discord:999")
    shared = json.loads(out)["model_version"]
    assert shared != version  # a server without a line: the shared version
    code, out, _ = _run(capsys, env_file, "models", "list", "--json")
    assert version not in out  # the shared line lists the shared versions only
    code, out, _ = _run(capsys, env_file, "ab", "status", "--server", KEY)
    assert code == 0 and f"`gpt2bot ab start VERSION --server {KEY}` starts one" in out
    code, _, err = _run(capsys, env_file, "ab", "start", version, "--server", KEY)
    assert code == 1 and f"{version} is the active version already" in err

    db = Database(env_file.read_text().split("DATABASE_URL=")[1].split()[0])
    entries = list(reversed(AuditRepository(db).recent()))
    db.dispose()
    # the line service audits every change, whoever asked: the CLI too, in the line's scope
    assert [e["action"] for e in entries] == ["line enable", "line add", "line retrain", "line use"]
    assert {(e["actor"], e["scope"], e["server_id"]) for e in entries} == {("cli", "line", KEY)}
