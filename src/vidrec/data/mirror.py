"""What a horizontal flip does to a label. Most actions look the same mirrored, but "Pushing
something from left to right" becomes "Pushing something from right to left" (Something-Something
V2 holds such pairs), and a class that names a direction without its mirrored class must never be
flipped. With flipping on (`data.flip`), training flips a clip only where its label allows, and
swaps the label when it does."""

from __future__ import annotations

import itertools
import re

# Each direction word and what it reads mirrored; the first spelling of a list is preferred, the
# others are tried when the classes spell it so.
_MIRRORED = {
    "left": ["right"],
    "right": ["left"],
    "leftward": ["rightward"],
    "rightward": ["leftward"],
    "leftwards": ["rightwards"],
    "rightwards": ["leftwards"],
    "clockwise": ["counterclockwise", "anticlockwise", "counter-clockwise", "anti-clockwise"],
    "counterclockwise": ["clockwise"],
    "anticlockwise": ["clockwise"],
    "counter-clockwise": ["clockwise"],
    "anti-clockwise": ["clockwise"],
}
# Whole words only, where letters end a word ("move_left", "turn-right" match; "bright" does not).
_WORDS = re.compile(
    r"(?<![A-Za-z])(" + "|".join(sorted(map(re.escape, _MIRRORED), key=len, reverse=True)) + r")(?![A-Za-z])",
    re.IGNORECASE,
)


def _spelled_like(word: str, original: str) -> str:
    if original.isupper():
        return word.upper()
    return word[0].upper() + word[1:] if original[0].isupper() else word


def mirrored_names(label: str) -> list[str]:
    """The names `label` may have mirrored, preferred first; `[label]` when it names no direction."""
    parts = _WORDS.split(label)  # text, word, text, word, ..., text
    words = parts[1::2]
    if not words:
        return [label]
    names = []
    for choice in itertools.product(*(_MIRRORED[w.lower()] for w in words)):
        pieces = list(parts)
        pieces[1::2] = [_spelled_like(new, old) for new, old in zip(choice, words)]
        names.append("".join(pieces))
    return names


def mirror_labels(classes: list[str]) -> list[int | None]:
    """For each class, the class a horizontally flipped clip of it belongs to: itself when its name
    names no direction, its mirrored class where there is one, else None (never flip it)."""
    index = {name: i for i, name in enumerate(classes)}
    mirror = []
    for i, name in enumerate(classes):
        names = mirrored_names(name)
        if names == [name]:
            mirror.append(i)
        else:
            mirror.append(next((index[n] for n in names if n in index), None))
    return mirror


def describe_mirror(classes: list[str], mirror: list[int | None]) -> str | None:
    """One line on what flipping does to these classes; None when no class names a direction."""
    swapped = sum(1 for i, m in enumerate(mirror) if m is not None and m != i)
    never = [classes[i] for i, m in enumerate(mirror) if m is None]
    if not swapped and not never:
        return None
    text = f"flip: {swapped} classes swap with their mirrored class"
    if never:
        text += f"; {len(never)} name a direction without one and are never flipped (e.g. '{never[0]}')"
    return text


__all__ = ["describe_mirror", "mirror_labels", "mirrored_names"]
