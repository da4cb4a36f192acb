"""TRAIN_METHOD=lora: a run trains an adapter over a full base version and saves it as an adapter
version (a few files, naming its base) that every loader serves as the merged model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.bootstrap import build_bootstrap, bundled_corpus
from model.evaluate import compare_on_heldout
from model.finetune import FinetuneConfig, FinetuneJob, FinetuneRun, run_finetune
from model.preference import completion_logprobs
from model.versions import ModelUnavailable, adapter_base, folder_bytes, load_model, read_metadata
from tests.model.conftest import TINY

CONFIG = FinetuneConfig(
    method="lora",
    lora_rank=4,
    lora_alpha=8,
    lora_dropout=0.0,
    epochs=8,
    learning_rate=3e-2,  # a rank-4 adapter on a 32-wide model: it needs a high rate
    kto_learning_rate=1e-2,
    kto_epochs=4,
    block_size=32,
    batch_size=4,
    eval_every=5,
    checkpoint_every=3,
    sample_max_new_tokens=6,
    device="cpu",
)
DOMAIN = [f"Robot number {i} likes to paint the blue fence in the garden." for i in range(30)]
LIKED, DISLIKED = " paints the blue fence.", " breaks the old window."
ROWS = [
    {"prompt": f"Robot {i}", "completion": LIKED if i % 3 == 0 else DISLIKED, "label": i % 3 == 0}
    for i in range(24)
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that already writes its corpus: an adapter adapts what the base knows (on the
    barely trained fine-tuning base, an adapter on the projections has little to move)."""
    folder = tmp_path_factory.mktemp("lora") / "base"
    torch.set_num_threads(1)
    build_bootstrap(folder, lines=bundled_corpus(), config=TINY)
    return folder


def _job(start: Path, name: str, tmp: Path, config: FinetuneConfig = CONFIG) -> FinetuneJob:
    return FinetuneJob(
        base_path=str(start),
        base_version=start.name,
        texts=DOMAIN,
        work_dir=str(tmp / f"work-{name}"),
        output_dir=str(tmp / name),
        version_name=name,
        config=config,
        preferences=ROWS,
    )


def _loss(path: Path, texts: list[str]) -> float:
    return compare_on_heldout({"v": str(path)}, texts, 32)["v"]


def test_a_lora_run_saves_a_small_adapter_version_that_loads_merged(
    base: Path, tmp_path: Path
) -> None:
    result = run_finetune(_job(base, "ft-1", tmp_path), lambda event: None)
    before, after = result["before"]["eval_loss"], result["after"]["eval_loss"]
    assert after < before - 0.3, (before, after)
    folder = tmp_path / "ft-1"
    files = {f.name for f in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert "model.safetensors" not in files  # the base's weights are not copied
    metadata = read_metadata(folder)
    assert metadata["kind"] == "adapter" and metadata["parent"] == "base"
    assert adapter_base(folder) is not None
    assert (adapter_base(folder).version, adapter_base(folder).path) == ("base", str(base))
    metrics = result["metrics"]
    assert metrics["train_method"] == "lora" and metrics["lora_rank"] == 4
    assert metrics["size_on_disk_bytes"] == folder_bytes(folder) < folder_bytes(base) / 2
    # every loader gets the merged model: the gate's comparison measures what training did
    heldout = metadata["heldout_texts"]
    assert _loss(folder, heldout) == pytest.approx(after, abs=1e-4)
    loaded = load_model("ft-1", str(folder), torch.device("cpu"), "fp32")
    assert not hasattr(loaded.model, "peft_config") or not loaded.model.peft_config
    assert type(loaded.model).__name__ == "GPT2LMHeadModel"


def test_training_from_an_adapter_continues_it_over_the_same_base(
    base: Path, tmp_path: Path
) -> None:
    first = run_finetune(_job(base, "ft-1", tmp_path), lambda event: None)
    second = run_finetune(_job(tmp_path / "ft-1", "ft-2", tmp_path), lambda event: None)
    metadata = read_metadata(tmp_path / "ft-2")
    # an adapter of the base, never of the adapter; it started where the first one ended
    assert (metadata["kind"], metadata["base_version"], metadata["parent"]) == (
        "adapter",
        "base",
        "ft-1",
    )
    assert metadata["base_path"] == str(base)
    assert second["before"]["eval_loss"] == pytest.approx(first["after"]["eval_loss"], abs=1e-4)
    # and full training from an adapter version makes a full version of its merged model
    full = run_finetune(
        _job(tmp_path / "ft-2", "ft-3", tmp_path, replace(CONFIG, method="full")),
        lambda event: None,
    )
    assert read_metadata(tmp_path / "ft-3")["kind"] == "full"
    assert (tmp_path / "ft-3" / "model.safetensors").exists()
    assert full["metrics"]["train_method"] == "full"
    assert full["before"]["eval_loss"] == pytest.approx(second["after"]["eval_loss"], abs=1e-4)


def test_a_resumed_lora_run_goes_on_from_its_adapter_checkpoint(base: Path, tmp_path: Path) -> None:
    job = _job(base, "ft-1", tmp_path)
    run = FinetuneRun(job, lambda event: None)
    run.resume_or_start()
    for _ in range(3):
        run.train_step()
    run.checkpoint()
    trained = {k: v.clone() for k, v in run.model.named_parameters() if v.requires_grad}
    again = FinetuneRun(job, lambda event: None)
    again.resume_or_start()
    assert again.step == 3
    resumed = {k: v for k, v in again.model.named_parameters() if v.requires_grad}
    assert resumed.keys() == trained.keys()
    assert all(torch.equal(resumed[k], trained[k]) for k in trained)


def test_a_kto_lora_run_moves_the_adapter_toward_liked_outputs(base: Path, tmp_path: Path) -> None:
    job = _job(base, "ft-1", tmp_path, replace(CONFIG, objective="kto"))
    result = run_finetune(job, lambda event: None)
    folder = tmp_path / "ft-1"
    assert read_metadata(folder)["kind"] == "adapter"
    assert not (folder / "ref").exists()  # KTO's frozen reference copy is not saved
    assert result["metrics"]["train_method"] == "lora"

    def margin(path: Path) -> float:
        loaded = load_model("v", str(path), torch.device("cpu"), "fp32")
        scores = completion_logprobs(loaded.model, loaded.tokenizer, ROWS)
        liked = [s for s, row in zip(scores, ROWS, strict=True) if row["label"]]
        disliked = [s for s, row in zip(scores, ROWS, strict=True) if not row["label"]]
        return sum(liked) / len(liked) - sum(disliked) / len(disliked)

    assert margin(folder) > margin(base) + 0.5


def test_an_adapter_whose_base_is_gone_says_which_base_is_missing(
    base: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "base-copy"
    shutil.copytree(base, copy)
    run_finetune(_job(copy, "ft-1", tmp_path, replace(CONFIG, epochs=1)), lambda event: None)
    shutil.rmtree(copy)
    with pytest.raises(ModelUnavailable, match="the base base-copy of adapter ft-1"):
        load_model("ft-1", str(tmp_path / "ft-1"), torch.device("cpu"), "fp32")


def test_a_run_records_its_throughput_memory_and_size_for_the_loop_bench(
    base: Path, tmp_path: Path
) -> None:
    for objective in ("sft", "kto"):
        config = replace(CONFIG, objective=objective, epochs=1, kto_epochs=1)
        metrics = run_finetune(_job(base, objective, tmp_path, config), lambda e: None)["metrics"]
        assert metrics["train_tokens_per_s"] > 0 and metrics["peak_rss_mb"] > 50
        assert metrics["size_on_disk_bytes"] == folder_bytes(tmp_path / objective)
