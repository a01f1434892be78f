"""Meta Ads: the Graph API client, the per-tenant sync, creative fields, the daily schedule."""
