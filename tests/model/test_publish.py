"""Publishing a version to a generation server's folder, and the deploy hook (a command, a URL)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from aiohttp import web

from model.publish import (
    Publication,
    PublishFailed,
    current_version,
    publish_folder,
    run_hook,
)


def _version(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "models" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": name}))
    (folder / "model.safetensors").write_bytes(os.urandom(256))
    return folder


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_version_is_published_whole_and_current_follows(tmp_path: Path) -> None:
    root = tmp_path / "served"
    v1, v2 = _version(tmp_path, "v1"), _version(tmp_path, "v2")
    first = publish_folder(root, "v1", str(v1))
    assert first.changed and first.path == str(root / "v1")
    assert json.loads((root / "v1" / "config.json").read_text()) == {"name": "v1"}
    # same file system: hard links, no second copy of the weights
    assert (root / "v1" / "model.safetensors").samefile(v1 / "model.safetensors")
    assert current_version(root) == "v1"
    assert not publish_folder(root, "v1", str(v1)).changed  # a restart has nothing to do
    publish_folder(root, "v2", str(v2))
    assert current_version(root) == "v2"
    assert (root / "current" / "config.json").read_text() == '{"name": "v2"}'
    assert sorted(p.name for p in root.iterdir()) == ["current", "v1", "v2"]  # no leftovers
    # a hub id (the base model) is not a folder: nothing to copy, the server's default serves
    hub = publish_folder(root, "gpt2", "gpt2")
    assert hub.changed and hub.path == "gpt2" and current_version(root) is None
    # an A/B arm is published beside the active version without moving `current`
    publish_folder(root, "v2", str(v2))
    publish_folder(root, "v1", str(v1), point_current=False)
    assert current_version(root) == "v2"


async def test_a_command_hook_gets_the_version_and_its_folder(tmp_path: Path) -> None:
    log = tmp_path / "hook.log"
    hook = _script(tmp_path, f'echo "$* $GPT2BOT_VERSION $GPT2BOT_MODEL_NAME" >> {log}')
    publication = Publication("v2", str(tmp_path / "served" / "v2"), True)
    await run_hook(f"{hook} --restart", publication, "v2", timeout_s=30)
    assert log.read_text() == f"--restart v2 {tmp_path / 'served' / 'v2'} v2 v2\n"


async def test_a_failing_or_slow_hook_is_a_clear_error(tmp_path: Path) -> None:
    publication = Publication("v2", "/srv/v2", True)
    failing = _script(tmp_path, "echo 'vllm: out of memory' >&2; exit 3")
    with pytest.raises(PublishFailed, match=r"exited with status 3.*previous version keeps"):
        await run_hook(str(failing), publication, "v2", timeout_s=30)
    with pytest.raises(PublishFailed, match="cannot be started"):
        await run_hook(str(tmp_path / "missing-hook"), publication, "v2", timeout_s=30)
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/bin/sh\nexec sleep 60\n")
    slow.chmod(0o755)
    with pytest.raises(PublishFailed, match=r"did not finish within 0\.5 s"):
        await run_hook(str(slow), publication, "v2", timeout_s=0.5)


async def test_a_url_hook_receives_the_version_as_json(tmp_path: Path) -> None:
    received: list[dict[str, str]] = []

    async def deploy(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(body)
        return web.Response(status=500 if body["version"] == "broken" else 204)

    app = web.Application()
    app.router.add_post("/deploy", deploy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/deploy"
    try:
        await run_hook(url, Publication("v2", "/srv/models/v2", True), "v2", timeout_s=30)
        with pytest.raises(PublishFailed, match="answered HTTP 500"):
            await run_hook(url, Publication("broken", "/x", True), "broken", timeout_s=30)
    finally:
        await runner.cleanup()
    assert received[0] == {"version": "v2", "path": "/srv/models/v2", "model": "v2"}
    with pytest.raises(PublishFailed, match="cannot be reached"):
        await run_hook(url, Publication("v2", "/x", True), "v2", timeout_s=30)


def test_an_adapter_version_is_published_as_a_merged_full_model(tmp_path: Path) -> None:
    """A server loads full models: an adapter version reaches it as its base with the adapter
    merged, and generates what gpt2bot's own engine generates from the adapter."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from model.bootstrap import BootstrapConfig, build_bootstrap, bundled_corpus
    from model.finetune import FinetuneConfig
    from model.lora import Start, lineage, lora_config
    from model.versions import AdapterBase, load_model, save_version

    base = tmp_path / "models" / "base"
    tiny = BootstrapConfig(vocab_size=300, n_layer=2, n_head=2, n_embd=32, steps=5)
    build_bootstrap(base, lines=bundled_corpus()[:40], config=tiny)
    loaded = load_model("base", str(base), torch.device("cpu"), "fp32")
    adapter = get_peft_model(loaded.model, lora_config(FinetuneConfig(lora_rank=4)))
    for name, weight in adapter.named_parameters():
        if "lora_B" in name:  # a trained adapter: its update is not zero
            torch.nn.init.normal_(weight, std=0.5)
    start = Start(adapter, AdapterBase("base", str(base)))
    folder = save_version(tmp_path / "models" / "ft-1", adapter, loaded.tokenizer, lineage(start))

    published = publish_folder(tmp_path / "served", "ft-1", str(folder))
    files = {f.name for f in Path(published.path).iterdir()}
    assert "model.safetensors" in files and "adapter_config.json" not in files
    served = AutoModelForCausalLM.from_pretrained(published.path)  # what a server loads
    ours = load_model("ft-1", str(folder), torch.device("cpu"), "fp32").model
    base_model = load_model("base", str(base), torch.device("cpu"), "fp32").model
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(served(ids).logits, ours(ids).logits, atol=1e-5)
        assert not torch.allclose(served(ids).logits, base_model(ids).logits, atol=1e-3)
