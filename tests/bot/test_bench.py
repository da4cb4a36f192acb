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


def test_the_burst_bound_charges_a_shrinking_batch_for_reading_the_weights() -> None:
    """A step of k rows costs max(k tokens at the GEMM rate, one read of the weights)."""
    from types import SimpleNamespace

    from model.bench.ceiling import burst_bound

    # 2,000 weights: 4,000 flops a token (1 s at 4e-6 GFLOP/s) and 8 kB in fp32 (2 s at 4e-6 GB/s)
    config = SimpleNamespace(n_layer=1, n_embd=10, vocab_size=80)
    rates = {"fp32": {"gemm_gflop_per_s": 4e-6, "tokens_per_s": 1.0}}
    full = burst_bound([3, 3, 3], config, rates, read_gb_s=4e-6)["fp32"]
    assert full["tokens_per_s"] == 1.0 and full["vs_ceiling"] == 1.0  # 3 steps of 3 s, 9 tokens
    # steps of 2, 1, 1, 1 rows: 2 s each (the read is the longer), 5 tokens in 8 s
    tail = burst_bound([4, 1], config, rates, read_gb_s=4e-6)["fp32"]
    assert tail["tokens_per_s"] == 0.6 and tail["vs_ceiling"] == 0.625
    int8 = {"int8": {"gemm_gflop_per_s": 4e-6, "tokens_per_s": 1.0}}  # a byte a weight: 0.5 s
    assert burst_bound([4, 1], config, int8, read_gb_s=4e-6)["int8"]["vs_ceiling"] == 1.0


def test_the_step_breakdown_counts_the_bytes_a_step_reads_against_the_bandwidth() -> None:
    import torch

    from model.bench.breakdown import COLUMNS, step_breakdown
    from model.bench.workload import build_model, with_dtype

    base = build_model(quick=True)
    bf16 = with_dtype(base, torch.bfloat16, "bench-bf16")
    variants = {"fp32": (base, ""), "int8": (base, "int8"), "bf16": (bf16, "")}
    variants["bf16+int8"] = (bf16, "bf16+int8")
    report = step_breakdown(variants)
    assert report["read_bandwidth_gb_per_s"] > 0 and report["columns"] == COLUMNS
    config = base.model.config
    elements = config.n_layer * 12 * config.n_embd**2 + config.vocab_size * config.n_embd
    for name, size in (("fp32", 4), ("bf16", 2), ("int8", 1)):
        one, many = report[name]["1"], report[name]["32"]
        assert one["weights_mb"] == round(elements * size / 1e6, 1)
        assert many["weights_mb"] == round(elements * size / 1e6, 1)
        kv = 2 * config.n_layer * config.n_embd * COLUMNS * (2 if name == "bf16" else 4) / 1e6
        assert one["kv_read_mb"] == round(kv, 1) and many["kv_read_mb"] == round(32 * kv, 1)
        for part, rows in ((one, 1), (many, 32)):
            assert part["step_ms"] > 0 and part["sampling_ms"] > 0
            # the floor reads the weights once and the cache, at the bandwidth measured
            moved = part["weights_mb"] + part["kv_read_mb"]
            floor = moved / 1e3 / report["read_bandwidth_gb_per_s"] * 1e3
            assert part["bandwidth_floor_ms"] == pytest.approx(floor, rel=0.02, abs=0.006)
            assert part["floor_tokens_per_s"] == pytest.approx(rows * 1e3 / floor, rel=0.02)
    # bf16 with int8 for few rows: a lone row reads the int8 weights, 32 rows the bf16 ones
    mixed = report["bf16+int8"]
    assert mixed["1"]["weights_mb"] == report["int8"]["1"]["weights_mb"]
    assert mixed["32"]["weights_mb"] == report["bf16"]["32"]["weights_mb"]


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
def test_the_training_bench_reports_its_documented_keys_on_the_tiny_config() -> None:
    from model.bench.training import VARIANTS, run_training_bench

    report = run_training_bench(None, ("tiny",))
    tiny = report["configs"]["tiny"]
    assert set(tiny["results"]) == set(VARIANTS)
    assert all(r["tokens_per_s"] > 0 and len(r["runs"]) == 1 for r in tiny["results"].values())
    assert tiny["results"]["recipe_fp32"]["dtype"] == "float32"
    assert tiny["ceiling"]["by_dtype"]["bf16"]["gemm_gflop_per_s"] > 0
    assert tiny["ratios"]["recipe_vs_ceiling"] > 0 and tiny["ratios"]["recipe_vs_hf_trainer"] > 0
    quality = tiny["quality"]
    assert quality["heldout_loss_after"]["fp32"] < quality["heldout_loss_before"]  # it learned
    assert report["machine"]["cpu_flags"] and "time_to_train_100k_tokens_s" not in report


def test_the_adapter_mixes_are_served_by_the_versions_they_name() -> None:
    """`adapters` on the quick model: each mix is served by exactly the versions it names (the
    scenario checks it), and the documented ratios come out."""
    from model.bench.adapters import ADAPTER_COUNTS, run_adapters
    from model.bench.workload import build_model, build_workload

    base = build_model(quick=True)
    report = run_adapters(base, "", build_workload(base, quick=True))
    expected = {"base", "two_full", *(f"adapters_{n}" for n in ADAPTER_COUNTS)}
    assert set(report["results"]) == expected
    assert all(r["tokens_per_s"] > 0 for r in report["results"].values())
    assert set(report["ratios"]) == {"adapters_8_vs_base", "ab_two_adapters_vs_two_full"}


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
