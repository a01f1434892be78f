"""The funnel's stage order: a contact's stage is the furthest point it reached and never moves back (R-14)."""

from __future__ import annotations

STAGE_ORDER: tuple[str, ...] = (
    "new_lead",
    "dm_qualified",
    "landing_link_sent",
    "landing_link_clicked",
    "form_submitted",
    "meeting_booked",
    "meeting_held",
    "package_sent",
    "checkout_started",
    "deposit_paid",
    "purchased",
)

_RANK = {stage: i for i, stage in enumerate(STAGE_ORDER)}
# Spellings the original wrote for the same stages.
_ALIASES = {"DM_qualified": "dm_qualified", "link_sent": "landing_link_sent", "link_clicked": "landing_link_clicked",
            "call_booked": "meeting_booked"}


def canonical(stage: str | None) -> str | None:
    if stage is None:
        return None
    return _ALIASES.get(stage, stage)


def rank(stage: str | None) -> int:
    """Position in the order; unknown or legacy relics (UNKNOWN_OUTBOUND, NO_STAGE) rank below new_lead."""
    return _RANK.get(canonical(stage) or "", -1)


def furthest(current: str | None, *candidates: str | None) -> str | None:
    """The stage to store: the current one unless a candidate is further along."""
    best = current
    for candidate in candidates:
        if candidate is not None and rank(candidate) > rank(best):
            best = canonical(candidate)
    return best
