"""Publishing a model version to a generation server (the `openai` backend).

A server such as vLLM reads model folders from its own disk, so a version trained here reaches
it in two steps:

1. The version folder is copied to `OPENAI_MODEL_DIR/<version>` (hard links where the two
   folders share a file system, else a copy), under a temporary name first and then renamed, so
   the server never sees half a folder. `OPENAI_MODEL_DIR/current` is a relative symbolic link
   to the version that should serve: a server (re)started on `current` serves it; with no
   `current` (the active version is a hub id, such as the base model) it serves its default.
2. The deploy hook (`OPENAI_DEPLOY_HOOK`), when set, tells the server: a command run as
   `HOOK... VERSION PATH` (also in `GPT2BOT_VERSION`, `GPT2BOT_MODEL_PATH`), or an http(s) URL
   that receives `POST {"version", "path", "model"}`. It should return once the server serves
   the new version. A hook that fails, or outlives `OPENAI_DEPLOY_TIMEOUT_S`, raises
   `PublishFailed`: `current` goes back to where it pointed, and the caller keeps naming the
   previous version (the registry then leaves the previous version active).

A published folder is never changed afterwards (version folders are immutable), which is what
makes hard links safe.

An adapter version (`TRAIN_METHOD=lora`) is published as a merged full copy: its base with the
adapter's update merged into the weights, which any server loads like a full version. Naming
adapters per request needs a server that applies LoRA to GPT-2, and neither vLLM nor TGI does
(docs/operating.md says where their code and docs show it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from model.backends.base import BackendError
from model.config import OpenAIConfig
from model.versions import adapter_base, read_metadata, validate_version_name

log = logging.getLogger(__name__)

CURRENT_LINK = "current"
HOOK_OUTPUT_CHARS = 2000  # of a failing hook's output, kept for the log


class PublishFailed(BackendError):
    """The version could not be published; the previous version keeps serving."""


async def publish(config: OpenAIConfig, version: str, path: str) -> str:
    """Publish `version` (folder `path`) when OPENAI_MODEL_DIR is set and run the deploy hook;
    the model name requests should use. Raises `PublishFailed` (nothing changes then)."""
    root = config.model_dir
    if root is None:
        return config.model or path
    before = await asyncio.to_thread(current_version, root)
    try:
        publication = await asyncio.to_thread(publish_folder, root, version, path)
    except OSError as error:
        log.error("publishing %s to %s failed: %s", version, root, error)
        raise PublishFailed(
            f"{version} cannot be copied to OPENAI_MODEL_DIR ({error.strerror or error}); "
            "the previous version keeps serving."
        ) from None
    model = config.model or (version if Path(path).is_dir() else path)
    if config.deploy_hook and publication.changed:
        try:
            await run_hook(config.deploy_hook, publication, model, config.deploy_timeout_s)
        except PublishFailed:
            await asyncio.to_thread(restore_current, root, before)
            raise
    return model


@dataclass(frozen=True)
class Publication:
    """Where a version was published and under which name requests ask for it."""

    version: str
    path: str  # the folder under OPENAI_MODEL_DIR, or the version's own path (a hub id)
    changed: bool  # something was copied or `current` moved (a hook has work to do)


def publish_folder(
    root: Path, version: str, source: str, point_current: bool = True
) -> Publication:
    """Copy `source` to `root/version` (atomically, once) and point `current` at it (unless
    `point_current` is false: an A/B arm is served beside the active version).

    A `source` that is not a folder (a hub id) is not copied; `current` is removed, so a server
    started on it falls back to its default model. Blocking: call through `asyncio.to_thread`.
    """
    validate_version_name(version)
    root.mkdir(parents=True, exist_ok=True)
    if not Path(source).is_dir():
        changed = point_current and _set_current(root, None)
        return Publication(version, source, changed)
    target = root / version
    copied = False
    if not target.exists():
        staging = root / f".{version}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        if adapter_base(source) is None:
            shutil.copytree(source, staging, copy_function=_link_or_copy)
        else:  # servers load full models: the adapter merged into its base
            write_merged(version, source, staging)
        try:
            staging.rename(target)
            copied = True
        except OSError:  # another process published it meanwhile: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
    moved = point_current and _set_current(root, version)
    return Publication(version, str(target), copied or moved)


def write_merged(version: str, source: str, folder: Path) -> None:
    """Save the adapter version at `source` as a full model folder: its base with the adapter
    merged, in fp32 (blocking: torch)."""
    import json

    import torch

    from model.versions import METADATA_FILE, load_model

    loaded = load_model(version, source, torch.device("cpu"), "fp32")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    metadata = {**read_metadata(source), "kind": "merged"}  # a full model, made from an adapter
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))


def current_version(root: Path) -> str | None:
    """The version `root/current` points at, or None."""
    link = root / CURRENT_LINK
    return os.readlink(link) if link.is_symlink() else None


def restore_current(root: Path, version: str | None) -> None:
    """Point `current` back at `version` (None: remove it), after a failed hook."""
    _set_current(root, version)


def _set_current(root: Path, version: str | None) -> bool:
    link = root / CURRENT_LINK
    if current_version(root) == version:
        return False
    if version is None:
        link.unlink(missing_ok=True)
        return True
    staging = root / f".{CURRENT_LINK}-{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(version)  # relative: valid wherever the server mounts the folder
    staging.replace(link)  # rename(2) over the old link: never a moment without one
    return True


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(source, target)


async def run_hook(hook: str, publication: Publication, model: str, timeout_s: float) -> None:
    """Tell the server about `publication` (served as `model`); raises `PublishFailed`."""
    what = f"the deploy hook for {publication.version}"
    try:
        async with asyncio.timeout(timeout_s):
            if hook.startswith(("http://", "https://")):
                await _post(hook, publication, model)
            else:
                await _command(hook, publication, model)
    except TimeoutError:
        log.error("%s (%s) did not finish within %g s", what, hook, timeout_s)
        raise PublishFailed(
            f"{what} did not finish within {timeout_s:g} s (OPENAI_DEPLOY_TIMEOUT_S); "
            "the previous version keeps serving."
        ) from None
    log.info("%s (%s) succeeded", what, hook)


async def _command(hook: str, publication: Publication, model: str) -> None:
    env = {
        **os.environ,
        "GPT2BOT_VERSION": publication.version,
        "GPT2BOT_MODEL_PATH": publication.path,
        "GPT2BOT_MODEL_NAME": model,
    }
    try:
        process = await asyncio.create_subprocess_exec(
            *shlex.split(hook),
            publication.version,
            publication.path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as error:
        log.error("deploy hook %r cannot be started: %s", hook, error)
        raise PublishFailed(
            f"The deploy hook cannot be started ({error.strerror or error}); check "
            "OPENAI_DEPLOY_HOOK. The previous version keeps serving."
        ) from None
    try:
        output, _ = await process.communicate()
    except asyncio.CancelledError:  # the timeout: the hook must not outlive its answer
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        tail = output.decode(errors="replace")[-HOOK_OUTPUT_CHARS:]
        log.error("deploy hook %r exited with %d:\n%s", hook, process.returncode, tail)
        raise PublishFailed(
            f"The deploy hook exited with status {process.returncode} (its output is in the "
            "log); the previous version keeps serving."
        )


async def _post(url: str, publication: Publication, model: str) -> None:
    body = {"version": publication.version, "path": publication.path, "model": model}
    try:
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
            if response.status >= 300:
                text = (await response.text())[:HOOK_OUTPUT_CHARS]
                log.error("deploy hook %s answered %d: %s", url, response.status, text)
                raise PublishFailed(
                    f"The deploy hook answered HTTP {response.status}; the previous version "
                    "keeps serving."
                )
    except aiohttp.ClientError as error:
        log.error("deploy hook %s cannot be reached: %s", url, error)
        raise PublishFailed(
            "The deploy hook cannot be reached; check OPENAI_DEPLOY_HOOK. The previous "
            "version keeps serving."
        ) from None
