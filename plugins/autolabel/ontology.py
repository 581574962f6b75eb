"""Prompts, classes and the mapping between them.

A user gives either ``classes`` (each name is its own prompt) or an
``ontology`` ``{prompt: class}`` in which several prompts may map to one
class. Backends score boxes against prompts; written labels carry classes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Ontology:
    """An ordered prompt -> class mapping.

    Attributes:
        prompts: the text prompts, in the order backends score them
        classes: the distinct class names, in order of first appearance
        prompt_to_class: ``(P,)`` int array, the class index of each prompt
    """

    prompts: tuple[str, ...]
    classes: tuple[str, ...]
    prompt_to_class: np.ndarray

    @classmethod
    def from_params(
        cls,
        classes: Sequence[str] | str | None = None,
        ontology: Mapping[str, str] | str | None = None,
    ) -> "Ontology":
        """Builds an ontology from the operator's ``classes``/``ontology``.

        Args:
            classes: class names (a list, or one comma-separated string)
            ontology: ``{prompt: class}`` (a dict, or its JSON text)

        Prompts and class names are stripped of surrounding whitespace;
        repeated prompts are kept once.

        Raises:
            ValueError: naming the parameter if neither or both are given,
                a value is not a string, or a prompt or class name is empty
                or whitespace only
        """
        if isinstance(ontology, str):
            text = ontology.strip()
            if text:
                try:
                    ontology = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f"Parameter 'ontology' is not valid JSON: {e}"
                    ) from None
            else:
                ontology = None
            if ontology is not None and not isinstance(ontology, dict):
                raise ValueError(
                    "Parameter 'ontology' must be a JSON object "
                    '{"prompt": "class", ...}'
                )
        if isinstance(classes, str):
            classes = [c for c in classes.split(",")]
        if classes is not None and len(classes) == 0:
            classes = None
        if not ontology and classes is None:
            raise ValueError(
                "Give either 'classes' (a list of names) or 'ontology' "
                "({prompt: class})"
            )
        if ontology and classes is not None:
            raise ValueError("Give 'classes' or 'ontology', not both")

        if ontology:
            if not isinstance(ontology, Mapping):
                raise ValueError(
                    "Parameter 'ontology' must be a mapping {prompt: class}; got "
                    f"{type(ontology).__name__}"
                )
            pairs = list(ontology.items())
            param = "ontology"
        else:
            if isinstance(classes, Mapping) or not isinstance(classes, Sequence):
                raise ValueError(
                    "Parameter 'classes' must be a list of class names; got "
                    f"{type(classes).__name__} (use 'ontology' for a {{prompt: class}} mapping)"
                )
            pairs = [(c, c) for c in classes]
            param = "classes"
        for prompt, cls_name in pairs:
            # str(None) would silently become a class called "None"
            for value in (prompt, cls_name):
                if not isinstance(value, str):
                    raise ValueError(
                        f"Parameter '{param}' must hold strings; got "
                        f"{type(value).__name__} {value!r}"
                    )

        prompts: list[str] = []
        class_names: list[str] = []
        index: list[int] = []
        for prompt, cls_name in pairs:
            prompt, cls_name = prompt.strip(), cls_name.strip()
            if not prompt or not cls_name:
                raise ValueError(
                    f"Parameter '{param}' contains an empty or whitespace-only "
                    f"prompt or class name: {_abridged(pairs)}"
                )
            if prompt in prompts:
                continue  # duplicates add nothing but cost
            if cls_name not in class_names:
                class_names.append(cls_name)
            prompts.append(prompt)
            index.append(class_names.index(cls_name))

        return cls(tuple(prompts), tuple(class_names), np.asarray(index, int))

    def class_scores(self, prompt_scores: np.ndarray) -> np.ndarray:
        """Aggregates ``(N, P)`` prompt scores to ``(N, C)`` class scores.

        A class scores the maximum over its prompts: the prompts are
        alternative phrasings of one concept, and the best-matching phrasing
        is the model's evidence for it.
        """
        prompt_scores = np.asarray(prompt_scores, dtype=np.float64)
        out = np.zeros((len(prompt_scores), len(self.classes)))
        for c in range(len(self.classes)):
            cols = prompt_scores[:, self.prompt_to_class == c]
            if cols.shape[1]:
                out[:, c] = cols.max(axis=1)
        return out

    def to_dict(self) -> dict:
        """JSON-serializable ``{prompt: class}`` for run records."""
        return {p: self.classes[i] for p, i in zip(self.prompts, self.prompt_to_class)}


def _abridged(pairs, limit: int = 10) -> str:
    """``repr`` of the first ``limit`` pairs (a 1,000-class list is unreadable)."""
    shown = ", ".join(f"{p!r}: {c!r}" for p, c in pairs[:limit])
    more = f", ... ({len(pairs) - limit} more)" if len(pairs) > limit else ""
    return "{" + shown + more + "}"
