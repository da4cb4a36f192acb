"""`gpt2bot bench`'s dispatcher: its options, its errors, and that it loads torch only on use.
(The generation bench's smoke run is in test_cli.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_bench_options_keep_their_documented_defaults() -> None:
    args = build_parser().parse_args(["bench", "training"])
    assert (args.kind, args.configs, args.cycles, args.json, args.quick) == (
        "training",
        "tiny,124m",
        3,
        False,
        False,
    )
    assert args.data is None and args.base is None and args.device is None


def test_an_unknown_benchmark_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["bench", "speed"])
    assert exit_info.value.code == 2
    assert "choose from 'generation', 'training', 'loop'" in capsys.readouterr().err


def test_an_unknown_training_config_is_one_line_that_names_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nLOG_LEVEL=WARNING\n")
    code = main(["--env-file", str(env), "bench", "training", "--configs", "huge"])
    assert code == 1
    assert capsys.readouterr().err == ("gpt2bot: unknown config(s) ['huge']: use tiny, 124m\n")


def test_the_cli_loads_without_torch_so_help_stays_quick() -> None:
    code = "import sys, bot.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"]


def test_the_new_generation_scenarios_report_their_documented_keys() -> None:
    """`ceiling`, `single_stream` and `burst_1000` on the quick model (the whole bench's smoke
    run is in test_cli.py)."""
    from bot.bench.scenarios import run_burst_1000, run_single_stream
    from model.bench.ceiling import ceilings, flops_per_token
    from model.bench.workload import build_model, build_workload

    base = build_model(quick=True)
    workload = build_workload(base, quick=True)
    config = base.model.config
    assert flops_per_token(config) == 2 * (2 * 12 * 128 * 128 + config.vocab_size * 128)
    ceiling = ceilings(config, ["fp32", "int8"])
    assert ceiling["int8"]["tokens_per_s"] > 0 and ceiling["fp32"]["gemm_gflop_per_s"] > 0
    stream = run_single_stream(base, workload, quick=True)
    assert stream["tokens_per_s"] > 0 and len(stream["runs"]) == 3
    burst = run_burst_1000(base, workload, quick=True)
    assert burst["requests"] == 100 and burst["generated"] + burst["refused"] == 100
    assert burst["generated_share"] == 1.0  # 400 tokens of work: far within 60 s
    assert burst["goodput_tokens_per_s"] > 0 and burst["max_wait_s"] == 60
    assert isinstance(burst["loop_max_stall_ms"], float)  # the documented key


def test_the_loop_bench_can_run_just_the_ab_simulation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gpt2bot bench loop --ab-only --json`: the "ab_simulation" key alone, at the settings'
    thresholds (few runs here; the rule's own tests check the targets)."""
    monkeypatch.setattr("bot.bench.ab_simulation.RUNS", 30)
    env = tmp_path / ".env"
    env.write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'bot.db'}\nAB_MIN_RATINGS=50\n")
    assert main(["--env-file", str(env), "bench", "loop", "--ab-only", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["ab_simulation"]
    simulation = report["ab_simulation"]
    assert simulation["runs"] == 30 and simulation["rule"]["min_ratings"] == 50
    assert simulation["margin"] == 0.1 and simulation["control_rate"] == 0.5
    for scenario in ("better", "equal", "worse"):
        assert set(simulation[scenario]) == {
            "candidate_rate",
            "promoted",
            "retired",
            "undecided",
            "median_ratings",
        }


@pytest.mark.slow
async def test_the_loop_bench_runs_a_lora_arm_with_seeds_and_reports_their_spread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LoRA arm, two seeds, one cycle, on a tiny model and a short batch: each number the
    report documents is there, per seed and as mean and spread."""
    import torch

    from bot.bench import loop
    from model.bootstrap import build_bootstrap, bundled_corpus
    from tests.model.conftest import TINY

    base = tmp_path / "base"
    torch.set_num_threads(1)
    build_bootstrap(base, lines=bundled_corpus(), config=TINY)  # writes "data" now and then
    monkeypatch.setattr(loop, "ROUNDS", 1)
    report = await loop.run_loop_bench(1, str(base), ("sft-lora",), seeds=2)

    arm = report["arms"]["sft-lora"]
    assert (arm["objective"], arm["method"]) == ("sft", "lora")
    assert [s["seed"] for s in arm["seeds"]] == [0, 1]
    assert arm["final_property_share"]["n"] == 2 and len(arm["property_share_per_cycle"]) == 2
    assert arm["heldout_loss_per_cycle"][0]["mean"] > 0
    run = arm["seeds"][0]["runs"][0]
    assert run["status"] == "succeeded" and run["train_method"] == "lora"
    assert run["train_tokens_per_s"] > 0 and run["peak_rss_mb"] > 0
    from model.versions import folder_bytes

    assert 0 < arm["size_on_disk_bytes"]["mean"] < folder_bytes(base) / 2  # an adapter only
    assert report["default_arm"] == "sft" and report["seeds"] == 2
    with pytest.raises(ValueError, match="unknown loop bench arm"):
        await loop.run_loop_bench(1, str(base), ("lora",))
