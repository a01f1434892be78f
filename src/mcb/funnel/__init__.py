"""The funnel: identity matching, stage order, and apply(event), the one write path for contacts,
funnel events and payments."""
