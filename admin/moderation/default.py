"""The default moderator: our blocklist, then `alt-profanity-check`'s classifier (a linear
model on character n-grams that ships inside the package: offline). Texts are scored in
batches on a worker thread (`batching.py`), so a burst of prompts never holds the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from admin.moderation.base import ModerationConfig, Verdict
from admin.moderation.batching import BatchScorer
from admin.moderation.terms import BUNDLED, Blocklist

CLASSIFIER_REASON = "reads as offensive"


class DefaultModerator:
    """Blocklist (bundled + `MODERATION_BLOCKLIST` + a server's additions) and classifier."""

    def __init__(self, config: ModerationConfig) -> None:
        from profanity_check import predict_prob  # loads scikit-learn and the model: ~1 s

        self.config = config
        self.blocklist = Blocklist((*BUNDLED, *config.blocklist))
        self._scorer = BatchScorer(predict_prob)

    async def check(self, text: str, extra_terms: Sequence[str] = ()) -> Verdict:
        verdict = self.blocklist.verdict(text, extra_terms)
        if verdict.flagged or self.config.threshold >= 1.0 or not text.strip():
            return verdict
        score = await self._scorer.score(text)
        if score >= self.config.threshold:
            return Verdict(True, CLASSIFIER_REASON, round(score, 3))
        return Verdict(False, score=round(score, 3))


def create(config: ModerationConfig) -> DefaultModerator:
    """The `default` entry point of `gpt2bot.moderators`."""
    return DefaultModerator(config)
