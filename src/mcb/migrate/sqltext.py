"""Value lists shared by the revisions and the code that checks them."""

from __future__ import annotations

from collections.abc import Iterable

PAYMENT_TYPES_LEGACY: tuple[str, ...] = ("buy_in_full", "buy_now_pay_later")
PAYMENT_TYPES: tuple[str, ...] = (*PAYMENT_TYPES_LEGACY, "refund")

CATEGORY_VALUES: tuple[str, ...] = (
    "deposit",
    "full_purchase",
    "payment_plan",
    "downpayment",
    "recurring",
    "miscellaneous",
    "refund",
)

EVENT_TYPES: tuple[str, ...] = (
    "contact_subscribed",
    "contact_created",
    "contact_updated",
    "dm_qualified",
    "link_sent",
    "link_clicked",
    "form_submitted",
    "appointment_scheduled",
    "appointment_held",
    "appointment_cancelled",
    "appointment_rescheduled",
    "package_sent",
    "checkout_started",
    "purchase_completed",
    "payment_refunded",
    "payment_plan_created",
    "payment_plan_updated",
    "deposit_paid",
    "recurring_payment_received",
    "feedback_requested",
    "feedback_received",
    "testimonial_collected",
    "migration_event",
    "manual_override",
)

EVENT_SOURCES: tuple[str, ...] = (
    "manychat",
    "ghl",
    "stripe",
    "denefits",
    "perspective",
    "chatbot",
    "system",
    "manual",
)


def in_list(values: Iterable[str]) -> str:
    """A SQL list of string literals (the values are constants of this module, never user input)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)
