"""The one error admin use-cases raise for the person who asked (Red's
`UserFeedbackCheckFailure`): a refusal or a mistake they can act on.

Its message is a sentence written for them: what was refused and why, and what to do next.
Each platform (Discord, Slack, the dashboard, the CLI) catches `AdminError` in one place and
shows the message as is; anything else an admin action raises is an incident (logged with an
id, never shown raw). A refusal the person may override (`forcible`: the promotion gate) is
followed by how to force it on that platform (`--force`, `force:True`, the Force box), which
only the platform knows.

The subclasses say what kind of refusal it is, for platforms that answer with a status (the
dashboard: 400, 404, 409); `Invalid` and `Unknown` stay `ValueError` and `LookupError` so code
that catches those still does.
"""

from __future__ import annotations


class AdminError(Exception):
    """A refusal or mistake to show the person who asked; the message says what to do."""

    forcible = False  # the person may insist; the platform says how

    def sentence(self, how_to_force: str) -> str:
        """The message, followed by `how_to_force` (the platform's words) when forcible."""
        message = str(self)
        return f"{message} {how_to_force}" if self.forcible else message


class Invalid(AdminError, ValueError):
    """A value the use-case cannot take (a bad schedule, setting, file or choice)."""


class Unknown(AdminError, LookupError):
    """What was named does not exist (a version, sample, generation, review pair, run)."""


class AlreadyRunning(AdminError):
    """A training run is in progress; the message says how far it is."""


class PromotionRefused(AdminError):
    """The gate refused a promotion; the message says why. An admin can force it."""

    forcible = True


class ReviewUnavailable(AdminError):
    """A blind review cannot be made now (one version only, a backend that serves one version
    at a time); the message says what to do."""


class ExperimentRefused(AdminError, ValueError):
    """An A/B experiment cannot start or stop; the message says why and what to do."""


def no_version(name: str) -> Unknown:
    """The same sentence wherever a version name is unknown."""
    return Unknown(f"There is no model version named {name!r}; the model list shows them.")
