"""`gpt2bot train` and `gpt2bot models use|rollback` end to end, on a tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bot.cli import main
from bot.settings import Settings, SettingsError
from model.bootstrap import BootstrapConfig, build_bootstrap, bundled_corpus
from storage import (
    AuditRepository,
    CuratedSampleRepository,
    Database,
    GenerationRepository,
    ModelVersionRepository,
    NewGeneration,
    upgrade,
)

TINY = BootstrapConfig(
    vocab_size=300, n_layer=2, n_head=2, n_embd=32, n_positions=128, block_size=32, steps=20
)


@pytest.fixture
def env_file(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path / "base-model"
    torch.set_num_threads(1)  # tiny models: threads only wait on each other (see model.finetune)
    build_bootstrap(base, lines=bundled_corpus()[:60], config=TINY)
    env = tmp_path / ".env"
    env.write_text(
        f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nMODEL_DIR={tmp_path / 'models'}\n"
        f"BASE_MODEL={base}\nDEVICE=cpu\nTRAIN_BLOCK_SIZE=32\nTRAIN_BATCH_SIZE=4\n"
        "TRAIN_LEARNING_RATE=0.003\nLOG_LEVEL=WARNING\n"
    )
    return env


def test_train_from_a_file_then_switch_versions(
    env_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "texts.txt"
    lines = [f"The lighthouse keeper number {i} counts the ships at night." for i in range(20)]
    data.write_text("\n".join([*lines, "", lines[0]]))

    code = main(
        ["--env-file", str(env_file), "train", "--data", str(data), "--epochs", "2", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "added 20, skipped 1 empty, skipped 1 duplicates" in err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["dataset_size"] == 20
    assert result["promoted"] is True
    assert result["after"]["eval_loss"] < result["before"]["eval_loss"]
    trained = result["model_version"]

    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    versions = ModelVersionRepository(db)
    assert versions.active().name == trained  # type: ignore[union-attr]
    assert main(["--env-file", str(env_file), "models", "rollback"]) == 0
    assert versions.active().name != trained  # type: ignore[union-attr]
    # the gate applies to `models use` too: the trained version beats the base, so it passes
    assert main(["--env-file", str(env_file), "models", "use", trained]) == 0
    assert versions.active().name == trained  # type: ignore[union-attr]
    assert main(["--env-file", str(env_file), "models", "use", "../x"]) == 1
    assert "invalid model version name" in capsys.readouterr().err
    db.dispose()
    shutil.rmtree(tmp_path / "models", ignore_errors=True)


def test_learning_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"TRAIN_EPOCHS": "5", "PROMOTE_TOLERANCE": "0.1"}, None)
    assert settings.learning.finetune.epochs == 5
    assert settings.learning.promote_tolerance == 0.1
    expected = "TRAIN_EPOCHS: 'many' is not a whole number from 1 to 100"
    with pytest.raises(SettingsError, match=expected):
        Settings.from_env({"TRAIN_EPOCHS": "many"}, None)


def test_review_lists_the_queue_and_approves_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nLOG_LEVEL=WARNING\n")
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(db.engine)
    generations = GenerationRepository(db)
    new = NewGeneration("web", "alice", "Rated", " text", {}, 1, "v1", 1, 1, 0.1)
    gid = generations.add(new).id
    for rater in ("bob", "carol", "dave"):
        generations.rate(gid, rater, 1, "👍")

    assert main(["--env-file", str(env), "review", "--json"]) == 0
    (queued,) = json.loads(capsys.readouterr().out)
    assert queued["text"] == "Rated text" and queued["why"]["up"] == 3
    assert main(["--env-file", str(env), "review", "--approve", str(queued["id"])]) == 0
    assert f"sample {queued['id']}: approved" in capsys.readouterr().out
    assert [s.text for s in CuratedSampleRepository(db).active()] == ["Rated text"]
    assert AuditRepository(db).recent()[0]["action"] == "review"
    db.dispose()


def test_a_lora_retrain_says_how_it_trained_and_models_list_shows_the_base(
    env_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file.write_text(env_file.read_text() + "TRAIN_METHOD=lora\nLORA_RANK=4\n")
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(f"The keeper number {i} counts ships at night." for i in range(12)))
    args = ["--env-file", str(env_file)]
    assert main([*args, "train", "--data", str(data), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "trained as a LoRA adapter (rank 4) over " in out and " MB on disk" in out

    assert main([*args, "models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    adapter = next(r for r in rows.values() if r["base_version"] is not None)
    assert rows[adapter["base_version"]]["base_version"] is None  # the base is a full version
    assert main([*args, "models", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"adapter of {adapter['base_version']}" in listing and " full " in listing
    # the base cannot be removed while the adapter loads over it; the adapter can
    base = adapter["base_version"]
    assert main([*args, "models", "use", adapter["name"], "--force"]) == 0
    capsys.readouterr()
    # the adapter serves `generate` (merged over its base), and the export names it
    assert main([*args, "generate", "The keeper", "--max-new-tokens", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == adapter["name"]
    assert main([*args, "export", "--format", "jsonl"]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [g["model_version"] for g in exported] == [adapter["name"]]
    assert main([*args, "models", "remove", base]) == 1
    assert f"is the base of the adapter version(s) {adapter['name']}" in capsys.readouterr().err
    assert main([*args, "models", "use", base, "--force"]) == 0
    assert main([*args, "models", "remove", adapter["name"]]) == 0
    assert not Path(adapter["path"]).exists()
    shutil.rmtree(tmp_path / "models", ignore_errors=True)
