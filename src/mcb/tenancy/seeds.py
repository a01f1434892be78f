"""The tenants every MCB database starts with (spec section 2.3).

The ids of ppcu and centner are the ones the original application hard-coded, so rows and links that
the original created keep meaning the same tenant. Columnline's id never appeared in the original; it is
fixed here (uuid5 of a stable name) so every MCB database agrees on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class SeedTenant:
    slug: str
    id: UUID
    name: str
    owner_name: str | None
    config: dict[str, Any] = field(default_factory=dict)


SEED_TENANTS: tuple[SeedTenant, ...] = (
    SeedTenant(
        slug="ppcu",
        id=UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a"),
        name="Postpartum Care USA",
        owner_name="Eric",
        config={"historical_filter": True, "timezone": "America/New_York"},
    ),
    SeedTenant(
        slug="centner",
        id=UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4"),
        name="Centner Wellness",
        owner_name=None,
    ),
    SeedTenant(
        slug="columnline",
        id=UUID("35e77fae-2a37-5f5e-a6c0-ecc3275f346f"),
        name="Columnline AI",
        owner_name="Connor",
    ),
)

SEED_SLUGS = tuple(t.slug for t in SEED_TENANTS)


def seed_tenant(slug: str) -> SeedTenant:
    for tenant in SEED_TENANTS:
        if tenant.slug == slug:
            return tenant
    from mcb.errors import UserError

    raise UserError(
        f"MCB_DEFAULT_TENANT is {slug!r}, but the default tenant must be one of the seeded tenants "
        f"({', '.join(SEED_SLUGS)})."
    )
