"""The one example type every corpus reader produces."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TaggedSentence:
    """A sentence as characters with one tag per character.

    Args:
        chars: the characters, one string each (a single Unicode character).
        tags: one tag per character (e.g. ``"B-PER"``); may be empty for unlabelled text.
        features: optional extra per-character layers, each a list as long as ``chars``
            (e.g. Weibo's word-position digit under ``"word_position"``).
        source: ``"path:line"`` of the sentence's first line, for error messages.
        spans: optional gold entities ``(type, start, end_exclusive)`` including the nested ones
            the flat tags cannot hold (e.g. ``read_cluener(..., nested="keep")``); ``None`` means
            the entities are those of the tags.

    Example:
    >>> s = TaggedSentence(list("王小明在北京"), ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"])
    >>> s.text
    '王小明在北京'
    """

    chars: list
    tags: list
    features: dict = dataclasses.field(default_factory=dict)
    source: str | None = None
    spans: list | None = None

    def __post_init__(self):
        if self.tags and len(self.tags) != len(self.chars):
            raise ValueError(
                f"{self.source or '<sentence>'}: {len(self.chars)} characters but {len(self.tags)} tags"
            )
        for name, values in self.features.items():
            if len(values) != len(self.chars):
                raise ValueError(
                    f"{self.source or '<sentence>'}: feature {name!r} has {len(values)} values "
                    f"for {len(self.chars)} characters"
                )

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def __len__(self) -> int:
        return len(self.chars)
