"""The preference stage: KTO from 👍/👎-rated outputs, with TRL's `KTOTrainer`.

KTO takes exactly what the bot collects: a prompt, a completion and whether raters liked it
(no pairs of answers to the same prompt). It raises the likelihood of liked completions and
lowers that of disliked ones, each measured against a frozen reference model: the version the
stage starts from (the active version for `kto`, the SFT result for `sft+kto`).

It runs inside the training process and speaks the recipe's protocol (`step`, `eval`,
`checkpoint`, `resumed` events on the emit callback), so progress, cancel (the supervisor stops
the process), resume (the trainer's own checkpoints under the run's work dir) and the loss log
work as for SFT. Stages:

  Plan (held-out rows by content hash, class weights, steps) -> Load start and reference
  -> Evaluate the start (held-out LM loss, like SFT, so the gate compares like with like)
  -> Train (KTOTrainer, checkpoints every TRAIN_CHECKPOINT_EVERY steps) -> Evaluate -> Save.

Library facts (TRL 1.16): the per-device batch must be above 1 (the KL estimate pairs each
completion with another row's prompt in the same batch); rows are read in order (sequential
sampling keeps that pairing), so they are ordered by content hash, which mixes 👍 and 👎; its
config defaults to bf16 and gradient checkpointing, both off here on CPU; a trainer prints its
logs to stdout, our event channel, unless its printer callback is removed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoTokenizer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerState
from transformers.trainer_utils import get_last_checkpoint

from model import lora
from model.config import FinetuneConfig
from model.device import (
    forget_training_precision,
    resolve_device,
    resolve_training_dtype,
    set_training_threads,
)
from model.evaluate import evaluation
from model.split import digest, split_by_content, split_heldout, trained_digests
from model.versions import read_metadata, save_version

Emit = Callable[[dict[str, Any]], None]
Row = dict[str, Any]  # {"prompt": str, "completion": str, "label": bool}

KTO_FOLDER = "kto"  # the trainer's checkpoints, under the run's work dir
BEFORE_FILE = "kto-before.json"  # the starting version's evaluation, kept for a resumed run
# weighted 👍 : weighted 👎 losses. The KTO paper recommends a ratio in [1, 4/3]; 1.1 sits inside
# it, clear of the rounding TRL applies when it checks the lower edge.
DESIRABLE_RATIO = 1.1


class PreferenceJob(Protocol):
    """What the stage reads of a `model.finetune.FinetuneJob`."""

    @property
    def base_path(self) -> str: ...

    @property
    def base_version(self) -> str: ...

    @property
    def texts(self) -> list[str]: ...

    @property
    def work_dir(self) -> str: ...

    @property
    def output_dir(self) -> str: ...

    @property
    def version_name(self) -> str: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    @property
    def config(self) -> FinetuneConfig: ...

    @property
    def prompts(self) -> tuple[str, ...]: ...

    @property
    def preferences(self) -> list[Row]: ...


def class_weights(n_desirable: int, n_undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight): weight x count of 👍 over weight x count of 👎
    is `DESIRABLE_RATIO`, whichever class is rarer; one of the two weights is 1."""
    if n_desirable == 0 or n_undesirable == 0:
        return 1.0, 1.0  # one class only: nothing to balance
    if n_desirable * DESIRABLE_RATIO <= n_undesirable:
        return DESIRABLE_RATIO * n_undesirable / n_desirable, 1.0
    return 1.0, n_desirable / (DESIRABLE_RATIO * n_undesirable)


def row_text(row: Row) -> str:
    return str(row["prompt"]) + str(row["completion"])


def first_stage_events(emit: Emit, steps_after: int) -> Emit:
    """`emit` for a stage that `steps_after` more steps follow: one progress bar over both."""

    def forward(event: dict[str, Any]) -> None:
        if event.get("event") in ("step", "resumed"):
            total = int(event["total"])
            event = {**event, "total": total + steps_after}
            if event["event"] == "step":
                left, all_left = total - event["step"], total + steps_after - event["step"]
                event["progress"] = event["step"] / event["total"]
                event["eta_s"] = event["eta_s"] * all_left / max(1, left)
        emit(event)

    return forward


class _Progress(TrainerCallback):
    """The trainer's steps, saves and losses as our events, after `offset` earlier steps."""

    def __init__(self, emit: Emit, offset: int, total: int) -> None:
        self.emit, self.offset, self.total = emit, offset, total
        self.started, self.first_step = time.perf_counter(), 0

    def on_train_begin(self, args: Any, state: TrainerState, control: Any, **kw: Any) -> None:
        self.started, self.first_step = time.perf_counter(), state.global_step

    def on_log(self, args: Any, state: TrainerState, control: Any, **kw: Any) -> None:
        logs = kw.get("logs") or {}
        if "loss" not in logs:
            return  # the end-of-training summary
        step, done = self.offset + state.global_step, state.global_step - self.first_step
        eta = (time.perf_counter() - self.started) / max(1, done) * (self.total - step)
        event = {"event": "step", "step": step, "total": self.total, "loss": float(logs["loss"])}
        self.emit({**event, "progress": step / self.total, "eta_s": eta})

    def on_save(self, args: Any, state: TrainerState, control: Any, **kw: Any) -> None:
        self.emit({"event": "checkpoint", "step": self.offset + state.global_step})


@torch.no_grad()
def completion_logprobs(model: Any, tokenizer: Any, rows: Sequence[Row]) -> list[float]:
    """Summed log-probability of each row's completion after its prompt (for checking which
    way a stage moved the model; the training loss itself is TRL's)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = []
    for row in rows:
        prompt = tokenizer.encode(row["prompt"])
        ids = tokenizer.encode(row_text(row))
        start = max(1, min(len(prompt), len(ids) - 1))  # at least one completion token
        tensor = torch.tensor([ids], device=device)  # (1, T)
        logits = model(input_ids=tensor).logits.float()  # (1, T, V)
        logp = torch.log_softmax(logits[0, :-1], dim=-1)  # (T-1, V): predicts tokens 1..T-1
        targets = tensor[0, 1:]
        scores.append(float(logp.gather(1, targets[:, None])[start - 1 :].sum()))
    model.train(was_training)
    return scores


def logratio_margin(
    policy: Sequence[float], reference: Sequence[float], rows: Sequence[Row]
) -> float:
    """Mean log-ratio (policy vs reference `completion_logprobs`) of the 👍 completions minus
    that of the 👎 ones: above 0 when the policy moved toward what raters liked (nan without
    both labels)."""
    ratios = [p - r for p, r in zip(policy, reference, strict=True)]
    liked = [x for x, row in zip(ratios, rows, strict=True) if row["label"]]
    disliked = [x for x, row in zip(ratios, rows, strict=True) if not row["label"]]
    if not liked or not disliked:
        return math.nan
    return sum(liked) / len(liked) - sum(disliked) / len(disliked)


class PreferenceRun:
    """One KTO stage. The constructor only plans (so `steps` is known before anything loads);
    `run(start_path)` trains from `start_path`, which is also the reference, and saves the
    version. Raises `ValueError` (with what to do) when there are too few rated outputs."""

    def __init__(self, job: PreferenceJob, emit: Emit) -> None:
        self.job, self.config, self.emit = job, job.config, emit
        self.work = Path(job.work_dir)
        # Plan: held-out texts and rows by content hash (never trained on by the base either)
        self.parent_digests = trained_digests(job.base_path)
        trained, fraction = set(self.parent_digests), self.config.heldout_fraction
        _, self.heldout = split_heldout(job.texts, fraction, trained)
        rows = sorted(
            (
                {"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])}
                for r in job.preferences
            ),
            key=lambda r: digest(row_text(r)),  # a stable order that mixes 👍 and 👎
        )
        self.train_rows, self.heldout_rows = split_by_content(
            rows, fraction, row_text, trained, at_least_one=False
        )
        if len(self.train_rows) < 2:
            raise ValueError(
                f"only {len(self.train_rows)} rated output(s) to learn preferences from: rate "
                "more outputs, or set TRAIN_OBJECTIVE=sft"
            )
        self.desirable = sum(r["label"] for r in self.train_rows)
        self.undesirable = len(self.train_rows) - self.desirable
        self.weights = class_weights(self.desirable, self.undesirable)
        self.batch = max(2, self.config.batch_size)  # KTO's KL estimate needs 2 rows a batch
        batches = math.ceil(len(self.train_rows) / self.batch)
        self.steps = self.config.kto_epochs * math.ceil(batches / self.config.grad_accum)

    def run(self, start_path: str) -> dict[str, Any]:
        # Load model: the policy and its frozen reference start from the same weights (full: a
        # second model; lora: TRL keeps a frozen copy of the adapter instead)
        device = resolve_device(self.config.device)
        tokenizer = AutoTokenizer.from_pretrained(start_path)
        start = lora.load_start(start_path, self.job.base_version, self.config)
        model = start.model.to(device)
        reference = None if start.adapter_of else lora.full_model(start_path).to(device)
        parameters = sum(p.numel() for p in model.parameters())
        set_training_threads(device, parameters, self.config.threads)
        start_scores = completion_logprobs(model, tokenizer, self.heldout_rows)
        stage = read_metadata(start_path) if start_path != self.job.base_path else {}
        offset = int(stage.get("metrics", {}).get("steps", 0))  # sft+kto: the SFT stage's steps
        total = offset + self.steps
        # Evaluate the start (kto: the active version; sft+kto: the SFT stage measured it)
        before = stage.get("eval_before") or self._before(model, tokenizer)
        # Train
        trainer = self._trainer(
            model, reference, tokenizer, device, _Progress(self.emit, offset, total)
        )
        checkpoint = self._last_checkpoint()
        if checkpoint is not None:
            done = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
            self.emit({"event": "resumed", "step": offset + done.global_step, "total": total})
        output = trainer.train(resume_from_checkpoint=checkpoint)
        self.tokens_per_s = self._tokens_per_s(tokenizer, output.metrics)
        # Evaluate and save
        return self._finish(start, tokenizer, before, stage, total, start_scores)

    def _tokens_per_s(self, tokenizer: Any, trained: dict[str, float]) -> float:
        """Rated outputs' tokens trained per second (the trainer's rows/s x their mean length;
        the reference's and the KL pairs' forward passes come on top)."""
        lengths = [len(tokenizer.encode(row_text(r))) for r in self.train_rows]
        mean = sum(min(n, self.config.block_size) for n in lengths) / len(lengths)
        return round(float(trained.get("train_samples_per_second", 0.0)) * mean, 1)

    def _evaluation(self, model: Any, tokenizer: Any, version: str) -> dict[str, Any]:
        c = self.config
        return evaluation(
            model,
            tokenizer,
            version,
            self.heldout,
            c.block_size,
            self.job.prompts,
            c.sample_max_new_tokens,
        )

    def _before(self, model: Any, tokenizer: Any) -> dict[str, Any]:
        file = self.work / BEFORE_FILE
        if file.exists():  # a resumed run: the start was measured before the crash
            return dict(json.loads(file.read_text()))
        before = self._evaluation(model, tokenizer, self.job.base_version)
        self.emit({"event": "eval", "step": 0, "eval_loss": before["eval_loss"], "before": before})
        self.work.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(".partial")
        partial.write_text(json.dumps(before))
        partial.replace(file)
        return before

    def _last_checkpoint(self) -> str | None:
        folder = self.work / KTO_FOLDER
        return get_last_checkpoint(str(folder)) if folder.is_dir() else None

    def _trainer(
        self, model: Any, reference: Any, tokenizer: Any, device: torch.device, progress: _Progress
    ) -> Any:
        import huggingface_hub.constants
        from datasets import Dataset
        from trl import KTOConfig, KTOTrainer

        # a self-hosted bot does not report its training runs to the Hub
        huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY = True
        c = self.config
        dtype = resolve_training_dtype(device, c.dtype)
        args = KTOConfig(
            output_dir=str(self.work / KTO_FOLDER),
            per_device_train_batch_size=self.batch,
            gradient_accumulation_steps=c.grad_accum,
            max_steps=self.steps,
            learning_rate=c.kto_learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=c.warmup_ratio,  # below 1: a share of the steps
            weight_decay=c.weight_decay,
            beta=c.kto_beta,
            desirable_weight=self.weights[0],
            undesirable_weight=self.weights[1],
            max_length=c.block_size,
            use_cpu=device.type == "cpu",
            bf16=dtype == torch.bfloat16,
            fp16=dtype == torch.float16,
            gradient_checkpointing=False,  # small models: memory is not the limit, time is
            logging_steps=1,  # every step's loss goes to the run's loss log
            save_strategy="steps",
            save_steps=c.checkpoint_every,
            save_total_limit=1,
            report_to="none",
            disable_tqdm=True,
            seed=c.seed,
            dataloader_num_workers=0,
        )
        forget_training_precision()  # the Trainer's accelerator takes `bf16`/`fp16` above
        trainer = KTOTrainer(
            model=model,
            ref_model=reference,
            args=args,
            train_dataset=Dataset.from_list(self.train_rows),
            processing_class=tokenizer,
            callbacks=[progress],
        )
        trainer.remove_callback(PrinterCallback)  # it prints logs on stdout, our event channel
        trainer.remove_callback(ProgressCallback)
        return trainer

    def _finish(
        self,
        start: lora.Start,
        tokenizer: Any,
        before: dict[str, Any],
        stage: dict[str, Any],
        steps: int,
        start_scores: list[float],
    ) -> dict[str, Any]:
        c, job = self.config, self.job
        model = lora.for_saving(start.model)
        model.eval()
        after = self._evaluation(model, tokenizer, job.version_name)
        self.emit({"event": "eval", "step": steps, "eval_loss": after["eval_loss"]})
        scores = completion_logprobs(model, tokenizer, self.heldout_rows)
        margin = logratio_margin(scores, start_scores, self.heldout_rows)
        metrics = {
            "objective": c.objective,
            "eval_loss": after["eval_loss"],
            "perplexity": after["perplexity"],
            "baseline_version": job.base_version,
            "baseline_eval_loss": before["eval_loss"],
            "steps": steps,
            "stopped_early": False,
            "block_size": c.block_size,
            "preference_rows": len(self.train_rows),
            "desirable": self.desirable,
            "undesirable": self.undesirable,
            "desirable_weight": round(self.weights[0], 4),
            "undesirable_weight": round(self.weights[1], 4),
            "kto_beta": c.kto_beta,
            "heldout_rows": len(self.heldout_rows),
            # held-out rated outputs: how much more the 👍 ones gained than the 👎 ones
            "heldout_logratio_margin": None if math.isnan(margin) else round(margin, 4),
            "train_tokens_per_s": self.tokens_per_s,
            **lora.method_metrics(start, c),
        }
        if "train_blocks" in stage.get("metrics", {}):
            metrics["train_blocks"] = stage["metrics"]["train_blocks"]
        seen = set(stage.get("trained_digests") or self.parent_digests)
        seen |= {digest(row_text(r)) for r in self.train_rows}
        save_version(
            Path(job.output_dir),
            model,
            tokenizer,
            {
                **job.metadata,
                **lora.lineage(start),
                "parent": job.base_version,
                "metrics": metrics,
                "heldout_texts": self.heldout,
                "trained_digests": sorted(seen),
                "eval_before": before,
                "finetune_config": asdict(c),
            },
        )
        return {"before": before, "after": after, "metrics": metrics}
