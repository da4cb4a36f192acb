"""The fine-tuning recipe: curated texts (and rated outputs) in, a new loadable version out.

Runs in its own process (`python -m model.finetune JOB.json`) so serving continues; it reports
through JSON lines on stdout (`step`, `eval`, `checkpoint`, `done`, `error`) that the parent
turns into database rows and progress messages. Stages:

  Load model -> Preprocess (held-out split, EOS between samples, pack into fixed blocks)
  -> Evaluate the starting model -> Train (warmup + linear decay, gradient accumulation,
  `TRAIN_DTYPE` autocast, checkpoints, early stopping) -> Evaluate -> Save version.

A plain PyTorch loop rather than HF `Trainer`: the data is already packed into equal blocks, so
the loop needs no collator or padding, and it keeps per-step reporting and resume in one page.

The loop runs under `accelerate.Accelerator`: one process on the CPU or one GPU as it is, or
`accelerate launch --multi_gpu --num_processes N -m model.finetune JOB.json` for N processes
(data parallel: `batch_size` is per process). The accelerator owns the device, mixed precision
(`TRAIN_DTYPE`) and the gradient all-reduce; only the main process evaluates, emits events and
writes checkpoints and the version, and broadcasts what the others need to decide alike.

`TRAIN_OBJECTIVE` picks what a run optimises: `sft` is this loop; `kto` is the preference stage
(`model/preference.py`, TRL's `KTOTrainer`); `sft+kto` runs this loop into a stage folder, then
KTO from its weights, on one progress bar. `TRAIN_METHOD` (`model/lora.py`) picks what trains:
every weight, or a LoRA adapter saved as an adapter version. Every run emits the same events.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from transformers import AutoTokenizer

from model import lora
from model.config import FinetuneConfig
from model.device import (
    peak_rss_mb,
    resolve_device,
    resolve_training_dtype,
    set_training_threads,
    training_accelerator,
)
from model.evaluate import evaluation, heldout_loss, pack_cyclic
from model.job import FinetuneJob
from model.split import digest, split_heldout, trained_digests
from model.training_step import FinalHidden, causal_lm_loss, fuse_gelu
from model.versions import folder_bytes, save_version

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
SFT_STAGE = "sft-stage"  # sft+kto: the SFT stage's version folder (KTO starts there)

Emit = Callable[[dict[str, Any]], None]


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _optimizer(model: torch.nn.Module, config: FinetuneConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # one fused kernel (CPU, CUDA), HF Trainer's default: 0.34 -> 0.09 s a 124M step here
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)


def _quiet(event: dict[str, Any]) -> None:
    """The emitter of every process but the main one: one process reports for all."""


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)  # atomic: a crash never leaves a half-written checkpoint


class FinetuneRun:
    """One training run's state: the loaded model and tokenizer, the packed `blocks` (N, T), the
    optimizer. `train_step()` is one optimizer step, `train()` the loop; `run_finetune` drives a
    whole run, and the training benchmark times `train_step` on its own."""

    def __init__(self, job: FinetuneJob, emit: Emit) -> None:
        self.job, self.config, self.emit = job, job.config, emit
        self.work = Path(job.work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.config.seed)
        # Load model (the accelerator picks this process's device and its mixed precision)
        wanted = resolve_device(self.config.device)
        self.dtype = resolve_training_dtype(wanted, self.config.dtype)
        self.accelerator = training_accelerator(wanted, self.dtype)
        device = self.accelerator.device  # "cpu:0" under several CPU processes, which
        self.device = torch.device("cpu") if device.type == "cpu" else device  # torch.load refuses
        self.main = self.accelerator.is_main_process
        self.emit = emit if self.main else _quiet
        self.tokenizer = AutoTokenizer.from_pretrained(job.base_path)
        self.start = lora.load_start(job.base_path, job.base_version, self.config)  # TRAIN_METHOD
        self.model = self.start.model.to(self.device)  # evaluated, saved; trained as `wrapped`
        parameters = sum(p.numel() for p in self.model.parameters())
        set_training_threads(self.device, parameters, self.config.threads)
        # Preprocess: held-out split (by content hash: stable as data grows), EOS, fixed blocks
        self.parent_digests = trained_digests(job.base_path)
        train, self.heldout = split_heldout(
            job.texts, self.config.heldout_fraction, set(self.parent_digests)
        )
        self.train_texts = train
        eos = self.tokenizer.eos_token_id
        ids = [self.tokenizer.encode(t) for t in train]
        self.blocks = pack_cyclic(ids, eos, self.config.block_size)  # (N, T)
        self.processes = self.accelerator.num_processes
        per_step = self.config.batch_size * self.config.grad_accum * self.processes
        self.steps_per_epoch = max(1, math.ceil(self.blocks.size(0) / per_step))
        self.total = self.config.max_steps or self.config.epochs * self.steps_per_epoch
        # the wrapped model (DDP under several processes) shares its weights with `model`
        self.wrapped, self.optimizer = self.accelerator.prepare(
            self.model, _optimizer(self.model, self.config)
        )
        fuse_gelu(self.model)  # model/training_step.py: same function, one kernel
        self.final = FinalHidden(self.model)  # the loss is taken from its hidden states
        self.head = self.model.get_output_embeddings().weight
        self.step, self.best, self.bad_evals = 0, math.inf, 0
        self.eval_before: dict[str, Any] = {}

    def evaluate(self) -> float:
        """Held-out loss, computed by the main process and given to all (so every process
        makes the same early-stopping decision)."""
        loss = [math.nan]
        if self.main:
            loss = [heldout_loss(self.model, self.tokenizer, self.heldout, self.config.block_size)]
        return float(broadcast_object_list(loss)[0])

    def _scaler_state(self) -> dict[str, Any]:
        scaler = self.accelerator.scaler  # fp16 only: its loss scale is part of the state
        return scaler.state_dict() if scaler is not None else {}

    def resume_or_start(self) -> None:
        checkpoint = self.work / CHECKPOINT_FILE
        if checkpoint.exists():
            state = torch.load(checkpoint, map_location=self.device, weights_only=False)
            lora.load_weights_state(self.model, state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.accelerator.scaler is not None and state["scaler"]:
                self.accelerator.scaler.load_state_dict(state["scaler"])
            self.step, self.best, self.bad_evals = state["step"], state["best"], state["bad"]
            self.eval_before = state["eval_before"]
            self.emit({"event": "resumed", "step": self.step, "total": self.total})
            return
        self.eval_before = self._evaluation(self.job.base_version)
        loss = self.eval_before["eval_loss"]
        self.emit({"event": "eval", "step": 0, "eval_loss": loss, "before": self.eval_before})

    def _evaluation(self, version: str) -> dict[str, Any]:
        """Held-out loss and fixed-prompt samples, made by the main process and given to all."""
        c = self.config
        made: list[Any] = [None]
        if self.main:
            made = [
                evaluation(
                    self.model,
                    self.tokenizer,
                    version,
                    self.heldout,
                    c.block_size,
                    self.job.prompts,
                    c.sample_max_new_tokens,
                )
            ]
        return dict(broadcast_object_list(made)[0])

    def batch_for(self, step: int, micro: int) -> torch.Tensor:
        """This process's blocks of micro-batch `micro` of `step`: a fixed shuffle per epoch
        (resumable), each process taking its own `batch_size` of it."""
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        order = torch.randperm(
            self.blocks.size(0), generator=torch.Generator().manual_seed(self.config.seed + epoch)
        )
        micro_index = (in_epoch * self.config.grad_accum + micro) * self.processes
        start = (micro_index + self.accelerator.process_index) * self.config.batch_size
        index = order[start : start + self.config.batch_size]
        if index.numel() == 0:  # the last step of an epoch may have fewer blocks
            index = order[: self.config.batch_size]
        return self.blocks[index].to(self.device)  # (B, T)

    def train_step(self) -> float:
        """One optimizer step; the loss averaged over the processes."""
        self.wrapped.train()
        warmup = max(1, int(self.total * self.config.warmup_ratio))
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate * _lr_factor(self.step, warmup, self.total)
        total_loss = torch.zeros((), device=self.device)
        for micro in range(self.config.grad_accum):
            batch = self.batch_for(self.step, micro)
            last = micro == self.config.grad_accum - 1
            # gradients are averaged over the processes once per step, not per micro-batch
            with nullcontext() if last else self.accelerator.no_sync(self.wrapped):
                loss = causal_lm_loss(self.wrapped, self.final, self.head, batch, self.dtype)
                loss = loss / self.config.grad_accum
                self.accelerator.backward(loss)  # scaled for fp16
            total_loss += loss.detach()
        self.accelerator.clip_grad_norm_(self.wrapped.parameters(), 1.0)
        self.optimizer.step()  # skipped by the fp16 scaler when gradients overflowed
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(self.accelerator.reduce(total_loss, "mean"))

    def checkpoint(self) -> None:
        if not self.main:  # the weights and optimizer state are the same in every process
            return
        _save_checkpoint(
            self.work / CHECKPOINT_FILE,
            {
                "model": lora.weights_state(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self._scaler_state(),
                "step": self.step,
                "best": self.best,
                "bad": self.bad_evals,
                "eval_before": self.eval_before,
            },
        )
        self.emit({"event": "checkpoint", "step": self.step})

    def evaluate_and_decide(self) -> bool:
        """Evaluate; remember the best weights; True when early stopping says stop."""
        loss = self.evaluate()
        self.emit({"event": "eval", "step": self.step, "eval_loss": loss})
        if loss < self.best - 1e-4:
            self.best, self.bad_evals = loss, 0
            if self.main:
                _save_checkpoint(self.work / BEST_FILE, {"model": lora.weights_state(self.model)})
            return False
        self.bad_evals += 1
        return self.bad_evals >= self.config.early_stop_patience

    def train(self) -> None:
        started, first_step = time.perf_counter(), self.step
        stopped_early, training_s = False, 0.0  # evaluations and checkpoints not included
        while self.step < self.total and not stopped_early:
            stepped = time.perf_counter()
            loss = self.train_step()
            training_s += time.perf_counter() - stepped
            done = self.step - first_step
            eta = (time.perf_counter() - started) / done * (self.total - self.step)
            self.emit(
                {
                    "event": "step",
                    "step": self.step,
                    "total": self.total,
                    "loss": loss,
                    "progress": self.step / self.total,
                    "eta_s": eta,
                }
            )
            if self.step % self.config.eval_every == 0 and self.step < self.total:
                stopped_early = self.evaluate_and_decide()
            if self.step % self.config.checkpoint_every == 0:
                self.checkpoint()
        if not stopped_early:
            self.evaluate_and_decide()
        best = self.work / BEST_FILE
        if self.main and best.exists():  # keep the weights that did best on held-out data
            state = torch.load(best, map_location=self.device, weights_only=False)
            lora.load_weights_state(self.model, state["model"])
        self.stopped_early = stopped_early
        tokens = (self.step - first_step) * self.config.batch_size * self.config.grad_accum
        self.tokens_per_s = tokens * self.processes * self.blocks.size(1) / max(training_s, 1e-9)

    def finish(self) -> dict[str, Any]:
        after = self._evaluation(self.job.version_name)
        loss = after["eval_loss"]
        metrics = {
            "objective": "sft",
            "eval_loss": loss,
            "perplexity": after["perplexity"],
            "baseline_version": self.job.base_version,
            "baseline_eval_loss": self.eval_before["eval_loss"],
            "steps": self.step,
            "stopped_early": self.stopped_early,
            "train_blocks": int(self.blocks.size(0)),
            "block_size": self.config.block_size,
            "train_dtype": str(self.dtype).removeprefix("torch."),
            "train_tokens_per_s": round(self.tokens_per_s, 1),  # of this launch (a resume: since)
            **lora.method_metrics(self.start, self.config),
        }
        self.model.eval()
        if self.main:
            save_version(
                Path(self.job.output_dir),
                lora.for_saving(self.model),
                self.tokenizer,
                {
                    **self.job.metadata,
                    **lora.lineage(self.start),
                    "parent": self.job.base_version,
                    "metrics": metrics,
                    "heldout_texts": self.heldout,
                    # what this version has seen: its held-out texts never include these
                    "trained_digests": sorted(
                        set(self.parent_digests) | {digest(t) for t in self.train_texts}
                    ),
                    "eval_before": self.eval_before,  # sft+kto: the KTO stage reports it
                    "finetune_config": asdict(self.config),
                },
            )
        self.accelerator.wait_for_everyone()  # no process leaves before the version is saved
        return {"before": self.eval_before, "after": after, "metrics": metrics}


def run_finetune(job: FinetuneJob, emit: Emit) -> dict[str, Any]:
    """Train (resuming from `job.work_dir` when a checkpoint is there) and save the version;
    returns evaluation before/after and metrics. `emit` receives progress events."""
    if Path(job.output_dir).exists():
        raise ValueError(f"{job.output_dir} already exists: pick a new version name")
    if job.config.objective == "sft":
        run = FinetuneRun(job, emit)
        run.resume_or_start()
        run.train()
        result = run.finish()
    else:
        result = _run_with_preferences(job, emit)
    footprint = {"size_on_disk_bytes": folder_bytes(job.output_dir), "peak_rss_mb": peak_rss_mb()}
    result["metrics"].update(footprint)
    emit({"event": "done", **result})
    return result


def _run_with_preferences(job: FinetuneJob, emit: Emit) -> dict[str, Any]:
    """kto: the preference stage from the base version. sft+kto: this SFT loop into a stage
    folder (skipped when a resumed run finds it done), then KTO from the SFT weights with them
    as the reference: KTO refines what SFT learned instead of re-measuring it (the KTO paper's
    recipe; against the active version every 👍 output already looks rewarded after SFT)."""
    from model.preference import PreferenceRun, first_stage_events

    kto = PreferenceRun(job, emit)  # plans the rows (split, class weights, steps); loads nothing
    if job.config.objective != "sft+kto":
        return kto.run(job.base_path)
    stage = Path(job.work_dir) / SFT_STAGE
    if not stage.exists():
        sft_job = replace(
            job, work_dir=str(Path(job.work_dir) / "sft"), output_dir=str(stage), preferences=[]
        )
        sft = FinetuneRun(sft_job, first_stage_events(emit, kto.steps))
        sft.resume_or_start()
        sft.train()
        sft.finish()
    return kto.run(str(stage))


def _print_event(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """`python -m model.finetune JOB.json`: the training process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m model.finetune JOB.json", file=sys.stderr)
        return 2
    # under `accelerate launch` (torchrun), every process runs this; one reports
    emit = _print_event if int(os.environ.get("RANK", "0")) == 0 else _quiet
    try:
        job = FinetuneJob.from_json(Path(args[0]).read_text())
        run_finetune(job, emit)
    except Exception as error:  # the parent records the reason; the traceback goes to stderr
        emit({"event": "error", "error": f"{type(error).__name__}: {error}"})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
