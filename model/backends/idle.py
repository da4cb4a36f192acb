"""The backend of one-shot commands (`gpt2bot models use`, `train`, `export`, `ab ...`): they
change the registry or read the database but serve nothing, so no model is loaded."""

from __future__ import annotations

from model.backends.base import Busy, GenerationRequest, QueueHandle


class IdleBackend:
    """Serves nothing: for commands that change the registry or read data without a model."""

    def __init__(self, model_version: str = "") -> None:
        self._version = model_version

    @property
    def model_version(self) -> str:
        return self._version

    async def start(self) -> None:
        """Nothing to load."""

    async def close(self) -> None:
        """Nothing to release."""

    def submit(self, request: GenerationRequest) -> QueueHandle:
        raise Busy("This command does not generate text; use `gpt2bot run`.", retry_after_s=0)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tail_tokens(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split(" ")[-max_tokens:])

    async def swap(self, version: str, path: str) -> None:
        """Only the database changes; a running bot switches through `/admin model use`."""
        self._version = version
