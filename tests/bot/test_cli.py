"""The `gpt2bot` console script end to end, as a subprocess on a temporary install."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from admin.errors import PromotionRefused
from bot import cli
from tests.conftest import register_active

GPT2BOT = Path(sys.executable).with_name("gpt2bot")


@pytest.fixture
def install(tmp_path, settings, tiny_model_dir):
    register_active(settings, tiny_model_dir)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "SLACK_"))},
        "DATABASE_URL": settings.storage.url,
        "MODEL_DIR": str(tmp_path / "models"),
        "BASE_MODEL": "bootstrap",
        "DEVICE": "cpu",
        "LOG_LEVEL": "WARNING",
    }
    return tmp_path, env


def gpt2bot(install, *args, check=True):
    cwd, env = install
    done = subprocess.run(
        [str(GPT2BOT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_generate_then_export_shows_it_with_params_and_version(install):
    done = gpt2bot(
        install,
        "generate",
        "A language model",
        "--seed",
        "9",
        "--top-k",
        "20",
        "--max-new-tokens",
        "10",
        "--json",
    )
    generated = json.loads(done.stdout)
    (generation,) = generated["generations"]
    assert generated["model_version"] == "tiny-1" and generation["seed"] == 9

    exported = gpt2bot(install, "export").stdout.splitlines()
    row = json.loads(exported[-1])
    assert row["id"] == generation["id"] and row["output"] == generation["output"]
    assert row["params"]["top_k"] == 20 and row["model_version"] == "tiny-1"
    assert row["platform"] == "cli"

    conversation = gpt2bot(install, "export", "--conversation", str(row["conversation_id"]))
    assert [json.loads(line)["id"] for line in conversation.stdout.splitlines()] == [row["id"]]
    missing = gpt2bot(install, "export", "--conversation", "999", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "gpt2bot: There is no conversation #999."

    out = install[0] / "export.csv"
    gpt2bot(install, "export", "--format", "csv", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[-1]["prompt"] == "A language model"


def test_human_output_names_the_model_version(install):
    done = gpt2bot(install, "generate", "Fine-tuning", "--seed", "1", "--max-new-tokens", "5")
    assert "model tiny-1" in done.stdout and "seed 1" in done.stdout


def test_invalid_option_is_one_line_and_non_zero(install):
    done = gpt2bot(install, "generate", "hi", "--temperature", "9", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "gpt2bot: temperature must be a number from 0 to 2; got '9'."


def test_bad_setting_stops_start_up_with_one_line(install):
    cwd, env = install
    done = gpt2bot((cwd, {**env, "DEVICE": "tpu"}), "models", check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt2bot: setting DEVICE:")
    assert "Traceback" not in done.stderr


def test_models_list_use_and_rollback(install):
    listed = json.loads(gpt2bot(install, "models", "list", "--json").stdout)
    assert [(v["name"], v["status"]) for v in listed] == [("tiny-1", "active")]
    done = gpt2bot(install, "models", "use", "../evil", check=False)
    assert done.returncode == 1 and "invalid model version name" in done.stderr
    done = gpt2bot(install, "models", "rollback", check=False)
    assert done.returncode == 1 and "no earlier active version" in done.stderr


def test_platform_not_installed_is_explained(install):
    done = gpt2bot(install, "run", "--platform", "nosuch", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("gpt2bot: the nosuch platform is not available")
    assert "Traceback" not in done.stderr


def test_missing_platform_token_is_reported_before_the_model_loads(install):
    done = gpt2bot(install, "run", "--platform", "discord", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("gpt2bot: setting DISCORD_TOKEN: is not set. Copy the bot token")
    assert done.stderr.rstrip().endswith("set DISCORD_TOKEN in .env.")
    assert "Traceback" not in done.stderr


def test_slack_settings_are_checked_by_the_slack_plugin(install):
    done = gpt2bot(install, "run", "--platform", "slack", check=False)  # no SLACK_* set
    assert done.returncode == 2
    assert done.stderr.startswith("gpt2bot: setting SLACK_BOT_TOKEN: missing. Copy the Bot User")
    assert "Traceback" not in done.stderr


def test_generation_benchmark_quick_run_prints_the_documented_json(install):
    """The CI smoke run of `gpt2bot bench generation`: every scenario runs and reports."""
    report = json.loads(gpt2bot(install, "bench", "generation", "--quick", "--json").stdout)
    assert report["workload"]["quick"] is True and report["workload"]["requests"] == 8
    wanted = report["workload"]["wanted_tokens"]
    fields = {
        "tokens_per_s",
        "p50_latency_s",
        "p95_latency_s",
        "p50_ttft_s",
        "p95_ttft_s",
        "peak_rss_mb",
        "dtype",
    }
    results = report["results"]
    for name in ("engine", "engine_fp32", "engine_arrivals", "naive", "static_batch"):
        result = results[name]
        assert fields <= result.keys(), (name, result)
        assert 0 < result["tokens"] <= wanted and result["tokens_per_s"] > 0, (name, result)
        assert 0 < result["p50_ttft_s"] <= result["p95_ttft_s"] <= result["p95_latency_s"]
    # generate_batch may be unavailable in a transformers build; then it must say why
    assert "error" in results["generate_batch"] or fields <= results["generate_batch"].keys()
    assert set(report["ratios"]) >= {
        "engine_vs_naive",
        "engine_fp32_vs_static_batch",
        "engine_fp32_vs_generate_batch",
    }
    assert report["ratios"]["engine_vs_naive"] > 0
    short = report["short_request"]
    assert short["idle_latency_s"] > 0 and short["busy_latency_s"] > 0
    assert 0 <= short["long_requests_finished_before"] <= report["workload"]["requests"]
    assert report["max_loop_lag_s"] >= 0
    # on CPU, what the burst's shape allows any engine at this machine's bandwidth
    assert set(report["burst_bound"]) == set(report["ceiling"])
    for bound in report["burst_bound"].values():
        assert 0 < bound["vs_ceiling"] <= 1 and bound["tokens_per_s"] > 0
    assert report["ratios"]["engine_vs_burst_bound"] > 0
    # llama.cpp's single sequence where llama-cpp-python is installed (not in CI): it says why not
    llamacpp = report["llamacpp"]
    assert "skipped" in llamacpp or llamacpp["tokens_per_s"] > 0, llamacpp
    assert "single_stream_vs_llamacpp" in report["ratios"]


def test_a_refusal_is_one_line_that_says_how_to_force(monkeypatch, capsys):
    """An admin use-case's refusal is printed as written (not an internal error), with the
    command line's way to force it when the admin may."""

    async def refused(settings, args):
        raise PromotionRefused("v2 was not promoted: its held-out loss 3.6 is worse.")

    monkeypatch.setitem(cli.COMMANDS, "models", refused)
    assert cli.main(["--env-file", "/nonexistent", "models", "use", "v2"]) == 1
    assert capsys.readouterr().err == (
        "gpt2bot: v2 was not promoted: its held-out loss 3.6 is worse. "
        "To promote it anyway, run the command again with --force.\n"
    )
