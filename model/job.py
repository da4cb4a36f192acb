"""A training run's job: everything the training process needs, as plain data written to JSON
(`python -m model.finetune JOB.json`), so a crashed run resumes from the same job."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from model.config import FinetuneConfig
from model.evaluate import EVAL_PROMPTS


@dataclass(frozen=True)
class FinetuneJob:
    """Everything the training process needs, as plain data (it is written to JSON)."""

    base_path: str  # the version to start from
    base_version: str
    texts: list[str]  # curated texts: SFT data, and the held-out texts of every objective
    work_dir: str  # checkpoints live here; a second launch resumes from them
    output_dir: str  # the new version folder
    version_name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    config: FinetuneConfig = field(default_factory=FinetuneConfig)
    prompts: tuple[str, ...] = EVAL_PROMPTS
    # rated outputs for the kto objectives: {"prompt", "completion", "label": bool (👍)}
    preferences: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FinetuneJob:
        raw = json.loads(text)
        raw["config"] = FinetuneConfig(**raw["config"])
        raw["prompts"] = tuple(raw["prompts"])
        return cls(**raw)
