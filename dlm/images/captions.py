"""Captions from class names: each class has a noun phrase, each data set a list of varied templates.

A caption is a template filled with the class's noun phrase, with (``{a}``: "an ankle boot") or without
(``{noun}``: "ankle boot") its article — "a photo of a sneaker", "an ankle boot, product shot". Training draws one
template per image; :func:`class_of_prompt` maps any prompt back to the class whose noun it names (used by the
class encoder and by the benchmark to know which class a prompt asked for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from dlm.errors import ConfigError, InputError


@dataclass(frozen=True)
class CaptionSet:
    """Noun phrases ``(article, noun)`` per class (label order), caption templates with ``{a}``/``{noun}`` slots, and
    other words a prompt may use for each class (matched by :func:`class_of_prompt`, never used in captions)."""

    nouns: tuple[tuple[str, str], ...]
    templates: tuple[str, ...]
    aliases: tuple[tuple[str, ...], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.nouns)

    def caption(self, label: int, template: int) -> str:
        """Template ``template`` filled with class ``label``'s noun phrase."""
        article, noun = self.nouns[label]
        return self.templates[template].format(a=f"{article} {noun}", noun=noun)

    def all_captions(self) -> list[str]:
        """Every caption, class-major: index = label · len(templates) + template."""
        return [self.caption(c, k) for c in range(self.num_classes) for k in range(len(self.templates))]

    def caption_index(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices into :meth:`all_captions` of one uniformly drawn template per label."""
        templates = torch.randint(len(self.templates), labels.shape, generator=generator)
        return labels.long().cpu() * len(self.templates) + templates


FASHION_CAPTIONS = CaptionSet(
    nouns=(("a", "t-shirt"), ("a pair of", "trousers"), ("a", "pullover"), ("a", "dress"), ("a", "coat"),
           ("a", "sandal"), ("a", "shirt"), ("a", "sneaker"), ("a", "bag"), ("an", "ankle boot")),
    templates=("{a}", "a photo of {a}", "{a}, product shot", "a black and white photo of {a}",
               "a small picture of {a}", "{noun}", "{a} on a dark background", "a catalogue image of {a}"),
    aliases=(("tshirt", "tee", "top"), ("trouser", "pants", "jeans"), ("sweater", "jumper"), (), ("jacket",),
             ("sandals",), ("blouse",), ("sneakers", "trainer", "trainers", "shoe"), ("handbag", "purse"),
             ("boot", "boots")),
)
DIGITS_CAPTIONS = CaptionSet(
    nouns=(("a", "zero"), ("a", "one"), ("a", "two"), ("a", "three"), ("a", "four"), ("a", "five"), ("a", "six"),
           ("a", "seven"), ("an", "eight"), ("a", "nine")),
    templates=("{a}", "the digit {noun}", "a handwritten {noun}", "{noun}", "a picture of the number {noun}",
               "{a}, written by hand", "a blurry {noun}", "the number {noun} in pixels"),
    aliases=tuple((str(d),) for d in range(10)),
)
CAPTION_SETS = {"fashion_mnist": FASHION_CAPTIONS, "digits": DIGITS_CAPTIONS}


def caption_set(dataset: str) -> CaptionSet:
    """The caption set of image data set ``dataset``."""
    if dataset not in CAPTION_SETS:
        raise ConfigError(f"no captions for dataset {dataset!r}", hint=f"choose one of {', '.join(CAPTION_SETS)}")
    return CAPTION_SETS[dataset]


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters, digits and hyphens)."""
    return re.findall(r"[a-z0-9-]+", text.lower())


def class_of_prompt(captions: CaptionSet, prompt: str) -> int:
    """The class whose noun or alias the prompt names (the longest match wins: "t-shirt" before "shirt"); InputError
    if none."""
    said = " " + " ".join(words(prompt)) + " "
    names = [(c, noun) for c, (_, noun) in enumerate(captions.nouns)]
    names += [(c, alias) for c, aliases in enumerate(captions.aliases) for alias in aliases]
    found = [(len(name), c) for c, name in names if f" {name} " in said]
    if not found:
        names = ", ".join(noun for _, noun in captions.nouns)
        raise InputError(f"prompt {prompt!r} names no class of this model", hint=f"mention one of: {names}")
    return max(found)[1]
