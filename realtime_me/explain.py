"""One plain-language sentence for a recognised micro-expression.

A pure function of what the product measured, so ``recognise``, the live pipeline and
the browser can all say the same thing about an event, e.g.

    left and right lip corners pulled up (AU12), apex at 120 ms, 190 ms long: positive 89%

The AUs come first (they are what a FACS coder would say), each placed on the side(s)
of the face whose regions moved; regions that moved but no reported AU accounts for
are named after them, so no measured movement is left out of the sentence.
"""
from __future__ import annotations

from typing import Mapping, Sequence

#: region (``spotting.regions.REGIONS``) -> (side or "", plain name, plural name for both sides)
REGION_WORDS: dict[str, tuple[str, str, str]] = {
    "brow_r": ("right", "brow", "brows"), "brow_l": ("left", "brow", "brows"),
    "glabella": ("", "the skin between the brows", ""),
    "eye_r": ("right", "eye", "eyes"), "eye_l": ("left", "eye", "eyes"),
    "nose": ("", "nose", ""),
    "mouth_r": ("right", "lip corner", "lip corners"), "mouth_l": ("left", "lip corner", "lip corners"),
    "lip_upper": ("", "upper lip", ""), "lip_lower": ("", "lower lip", ""),
    "chin": ("", "chin", ""),
}

#: AU -> (singular, plural subject, verb, regions that carry it). Sided subjects get
#: "left"/"right" from the paired regions that moved.
AU_WORDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "AU1": ("inner brow", "inner brows", "raised", ("brow_l", "brow_r", "glabella")),
    "AU2": ("outer brow", "outer brows", "raised", ("brow_l", "brow_r")),
    "AU4": ("brow", "brows", "lowered and drawn together", ("brow_l", "brow_r", "glabella")),
    "AU5": ("upper lid", "upper lids", "raised", ("eye_l", "eye_r")),
    "AU6": ("cheek", "cheeks", "raised", ("eye_l", "eye_r")),
    "AU7": ("lid", "lids", "tightened", ("eye_l", "eye_r")),
    "AU9": ("nose", "nose", "wrinkled", ("nose",)),
    "AU10": ("upper lip", "upper lip", "raised", ("lip_upper", "nose")),
    "AU12": ("lip corner", "lip corners", "pulled up", ("mouth_l", "mouth_r")),
    "AU14": ("lip corner", "lip corners", "tightened into a dimple", ("mouth_l", "mouth_r")),
    "AU15": ("lip corner", "lip corners", "pulled down", ("mouth_l", "mouth_r")),
    "AU16": ("lower lip", "lower lip", "pulled down", ("lip_lower",)),
    "AU17": ("chin", "chin", "raised", ("chin", "lip_lower")),
    "AU18": ("lips", "lips", "puckered", ("lip_upper", "lip_lower", "mouth_l", "mouth_r")),
    "AU20": ("lips", "lips", "stretched", ("mouth_l", "mouth_r")),
    "AU23": ("lips", "lips", "tightened", ("lip_upper", "lip_lower")),
    "AU24": ("lips", "lips", "pressed together", ("lip_upper", "lip_lower")),
    "AU25": ("lips", "lips", "parted", ("lip_upper", "lip_lower")),
    "AU26": ("jaw", "jaw", "dropped", ("chin", "lip_lower")),
}
#: AUs said together when both are reported (one movement to a reader)
AU_PAIRS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("AU1", "AU2"): ("brow", "brows", "raised"),
}
MAX_AUS = 3


def _sides(moved: Sequence[str], regions: tuple[str, ...]) -> list[str]:
    """"left"/"right" of the paired regions among ``regions`` that moved, subject's view."""
    sides = {REGION_WORDS[r][0] for r in regions if r in moved and r in REGION_WORDS}
    return [s for s in ("left", "right") if s in sides]


def _subject(singular: str, plural: str, sides: list[str]) -> str:
    if len(sides) == 2:
        return f"left and right {plural}"
    if len(sides) == 1 and singular != plural:
        return f"{sides[0]} {singular}"
    return plural


def _join(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _region_phrase(regions: list[str]) -> str:
    """Plain names of regions, the two sides of a pair said once ("left and right brows")."""
    out, done = [], set()
    for r in regions:
        if r in done or r not in REGION_WORDS:
            continue
        side, name, plural = REGION_WORDS[r]
        twin = next((o for o in regions if o != r and REGION_WORDS.get(o, ("",))[1:] == (name, plural)), None)
        if side and twin is not None:
            out.append(f"left and right {plural}")
            done.update((r, twin))
        else:
            out.append(f"{side} {name}".strip())
            done.add(r)
    return _join(out)


def describe_movement(moved: Sequence[str], aus: Mapping[str, float]) -> str:
    """What the face did: reported AUs on the sides that moved, then unexplained regions."""
    ranked = [a for a, _ in sorted(aus.items(), key=lambda kv: (-kv[1], kv[0]))][:MAX_AUS]
    parts, explained, said = [], set(), set()
    for au in ranked:
        if au in said:
            continue
        pair = next((p for p in AU_PAIRS if au in p and all(x in ranked for x in p)), None)
        if pair is not None:
            singular, plural, verb = AU_PAIRS[pair]
            regions = tuple(r for a in pair for r in AU_WORDS[a][3])
            name = "+".join(pair)
        else:
            singular, plural, verb, regions = AU_WORDS.get(au, (au, au, "active", ()))
            name = au
        parts.append(f"{_subject(singular, plural, _sides(moved, regions))} {verb} ({name})")
        explained.update(regions)
        said.update(pair or (au,))
    rest = [r for r in moved if r not in explained]
    if rest:
        parts.append(f"{_region_phrase(list(rest))} moved")
    return ", ".join(parts) if parts else "no clear movement"


def explain(moved: Sequence[str], aus: Mapping[str, float], emotion: str | None, probs: Mapping[str, float],
            apex_s: float | None = None, duration_s: float | None = None) -> str:
    """The sentence. ``moved``: region names (``spotting.regions``) that moved, strongest
    first; ``aus``: reported AU -> probability; ``apex_s``: seconds from onset to apex;
    ``duration_s``: onset to offset. Unknown parts (None) are left out."""
    parts = [describe_movement(moved, aus)]
    if apex_s is not None:
        parts.append(f"apex at {apex_s * 1e3:.0f} ms")
    if duration_s is not None:
        parts.append(f"{duration_s * 1e3:.0f} ms long")
    said = emotion or "unclassified"
    if emotion and emotion in probs:
        said += f" {probs[emotion]:.0%}"
    return ", ".join(parts) + ": " + said
