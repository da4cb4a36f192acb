"""Members own their data: `/mydata export` sends them everything they wrote and rated,
`/mydata delete` removes it (see `storage/members.py` for exactly what) and keeps their future
generations out of training. Both are recorded in the audit log. Platform-neutral: platforms
render the bytes and sentences below.
"""

from __future__ import annotations

import json

from bot.chat import Origin
from storage import AuditRepository, Database, DeletionReport, MemberDataRepository

EXPORT_FILENAME = "gpt2bot-mydata.jsonl"
DELETE_WARNING = (
    "This deletes the text of every prompt and output you generated here, your ratings, and "
    "every training sample that came from you, and keeps your future generations out of "
    "training. Model versions already trained on your text are not retrained by this. It "
    "cannot be undone."
)


def deleted_sentence(report: DeletionReport) -> str:
    return (
        f"Done: the text of {report.generations} generation(s), {report.ratings} rating(s) and "
        f"{report.curated_samples} training sample(s) of yours are deleted, and your future "
        "generations will not be used for training. Model versions already trained are not "
        "retrained by this."
    )


class MyData:
    """Export and deletion of one member's data (a member is a platform and a user id)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.members = MemberDataRepository(db)
        self.audit = AuditRepository(db)

    async def export(self, origin: Origin) -> bytes:
        """Their generations and ratings as JSON lines (UTF-8)."""
        rows = await self.db.run(self.members.export, origin.platform, origin.user_id)
        await self._audit(origin, "mydata export", {"rows": len(rows)})
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()

    async def delete(self, origin: Origin) -> DeletionReport:
        report = await self.db.run(self.members.delete, origin.platform, origin.user_id)
        detail = {
            "generations": report.generations,
            "ratings": report.ratings,
            "curated_samples": report.curated_samples,
        }
        await self._audit(origin, "mydata delete", detail)
        return report

    async def _audit(self, origin: Origin, action: str, detail: dict[str, int]) -> None:
        await self.db.run(
            self.audit.record,
            origin.user_id,
            origin.platform,
            action,
            True,
            detail,
            "self",
            origin.guild_id,
        )
