"""The benchmarks that need only `model` (`model/bench/`): their documented keys and the
arithmetic of their bounds, on the quick model. (The generation bench's smoke run is in
tests/bot/test_cli.py, its scenarios in tests/bot/test_bench.py.)"""

from __future__ import annotations

import pytest


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
