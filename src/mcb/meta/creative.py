"""An ad's creative as MCB stores it: the copy and media Meta returns, and the fields derived from them.

Derived fields (spec 4.1): the *transformation theme* is the first theme whose keywords appear in the
copy (else ``general``); the *symptom focus* is every symptom whose keywords appear (else
``['general']``); the *copy length* is short (< 150 characters of primary text), medium (< 400) or long;
the *media type* is ``video`` when the creative has a video, else ``image``.

The keyword lists are per tenant: ``tenants.config.meta_keywords`` (set with ``mcb meta keywords set``)
as ``{"themes": [{"name": ..., "keywords": [...]}, ...], "symptoms": [...]}`` (lists, because theme
order decides ties). PPCU's lists below are the default for the tenant ``ppcu`` only; any other tenant
without lists gets ``general`` everywhere. Keywords match case-insensitively anywhere in the copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcb.errors import UserError

Pairs = tuple[tuple[str, tuple[str, ...]], ...]

GENERAL = "general"
SEPARATOR = " ||| "  # between alternative copy variants, as the original stored them


@dataclass(frozen=True)
class KeywordLists:
    themes: Pairs
    symptoms: Pairs

    def as_config(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "themes": [{"name": n, "keywords": list(k)} for n, k in self.themes],
            "symptoms": [{"name": n, "keywords": list(k)} for n, k in self.symptoms],
        }


PPCU_KEYWORDS = KeywordLists(
    themes=(
        ("confusion_to_clarity", ("confus", "clarity", "not sure", "don't know", "no idea", "answers")),
        ("overwhelm_to_relief", ("overwhelm", "relief", "too much", "drowning")),
        ("pain_to_comfort", ("pain", "comfort", "ache", "hurt", "sore")),
        ("isolation_to_community", ("alone", "isolat", "lonely", "community", "other moms")),
        ("shame_to_confidence", ("shame", "embarrass", "confiden", "self-conscious")),
        ("doubt_to_trust", ("doubt", "trust", "skeptic", "tried everything")),
        ("fear_to_hope", ("fear", "afraid", "scared", "worried", "hope")),
    ),
    symptoms=(
        ("diastasis", ("diastasis", "ab separation", "abdominal separation", "mummy tummy", "mommy tummy")),
        ("pelvic_floor", ("pelvic floor", "leak", "incontinence", "prolapse", "bladder")),
        ("low_milk_supply", ("milk supply", "low supply", "breastfeed", "lactation", "pumping")),
        ("pain", ("pain",)),
        ("weight", ("weight", "pounds", "lbs")),
        ("energy", ("energy", "exhausted", "tired", "fatigue")),
        ("back_pain", ("back pain", "lower back")),
        ("hip_pain", ("hip pain", "hips")),
        ("c_section", ("c-section", "c section", "cesarean", "caesarean")),
    ),
)
NO_KEYWORDS = KeywordLists(themes=(), symptoms=())
CONFIG_KEY = "meta_keywords"


def _pairs(value: Any, what: str) -> Pairs:
    if not isinstance(value, list):
        raise UserError(f"meta_keywords.{what} must be a list of {{\"name\": ..., \"keywords\": [...]}} objects.")
    pairs = []
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip()
                and isinstance(item.get("keywords"), list)
                and all(isinstance(k, str) and k.strip() for k in item["keywords"])):
            raise UserError(f"Each entry of meta_keywords.{what} needs a non-empty \"name\" and a \"keywords\" "
                            "list of non-empty strings.")
        pairs.append((item["name"].strip(), tuple(k.strip().lower() for k in item["keywords"])))
    return tuple(pairs)


def parse_keyword_lists(value: Any) -> KeywordLists:
    """Validate a ``meta_keywords`` object (from a file or tenants.config); one sentence when it is wrong."""
    if not isinstance(value, dict):
        raise UserError("meta_keywords must be an object with \"themes\" and \"symptoms\" lists.")
    unknown = sorted(set(value) - {"themes", "symptoms"})
    if unknown:
        raise UserError(f"meta_keywords has unknown key(s) {', '.join(unknown)}; valid keys: themes, symptoms.")
    return KeywordLists(_pairs(value.get("themes", []), "themes"), _pairs(value.get("symptoms", []), "symptoms"))


def keyword_lists(slug: str, config: dict[str, Any]) -> KeywordLists:
    """The tenant's lists: its own from tenants.config, else PPCU's for ppcu, else none."""
    if CONFIG_KEY in config:
        return parse_keyword_lists(config[CONFIG_KEY])
    return PPCU_KEYWORDS if slug == "ppcu" else NO_KEYWORDS


def transformation_theme(copy: str, lists: KeywordLists) -> str:
    lowered = copy.lower()
    for name, keywords in lists.themes:
        if any(k in lowered for k in keywords):
            return name
    return GENERAL


def symptom_focus(copy: str, lists: KeywordLists) -> list[str]:
    lowered = copy.lower()
    found = [name for name, keywords in lists.symptoms if any(k in lowered for k in keywords)]
    return found or [GENERAL]


def copy_length(primary_text: str) -> str:
    n = len(primary_text)
    return "short" if n < 150 else "medium" if n < 400 else "long"


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _first(*values: Any) -> str | None:
    for value in values:
        found = _text(value)
        if found:
            return found
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def creative_row(ad: dict[str, Any], lists: KeywordLists) -> dict[str, Any] | None:
    """The meta_ad_creatives columns for one ad as the ads edge returns it (``creative{...}`` expanded,
    ``preview_shareable_link``); None when the ad has no creative."""
    creative = ad.get("creative")
    if not isinstance(creative, dict):
        return None
    spec = _object(creative.get("object_story_spec"))
    link, video = _object(spec.get("link_data")), _object(spec.get("video_data"))
    feed = _object(creative.get("asset_feed_spec"))

    primary = _first(link.get("message"), video.get("message"), creative.get("body"))
    bodies = [_text(b.get("text")) for b in feed.get("bodies", []) if isinstance(b, dict)]
    if primary is None and bodies:
        primary = next((b for b in bodies if b), None)
    alternatives = [b for b in dict.fromkeys(bodies) if b and b != primary]
    titles = [_text(t.get("text")) for t in feed.get("titles", []) if isinstance(t, dict)]
    headline = _first(link.get("name"), video.get("title"), creative.get("title"), *titles, creative.get("name"))
    video_id = _first(creative.get("video_id"), video.get("video_id"),
                      *[v.get("video_id") for v in feed.get("videos", []) if isinstance(v, dict)])
    copy = " ".join(t for t in (primary, headline, *alternatives) if t)
    return {
        "ad_id": str(ad["id"]),
        "primary_text": primary,
        "headline": headline,
        "alternative_copy": SEPARATOR.join(alternatives) or None,
        "video_id": video_id,
        "thumbnail_url": _first(creative.get("thumbnail_url"), link.get("picture"), video.get("image_url")),
        "preview_url": _text(ad.get("preview_shareable_link")),
        "post_id": _first(creative.get("effective_object_story_id"), creative.get("object_story_id")),
        "transformation_theme": transformation_theme(copy, lists),
        "symptom_focus": symptom_focus(copy, lists),
        "copy_length": copy_length(primary or ""),
        "media_type": "video" if video_id else "image",
    }
