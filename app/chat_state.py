"""What a conversation has told chat so far: the titles a person liked, saw or disliked.

Each turn's parsed query names titles (llm/intent); the session keeps them all, so the
third message still knows the first one's "I loved The Lion King (1994)". They act the
way a friend would use them:

- liked and seen titles are the person's taste: they join the user's history (for an
  anonymous session they are the whole history), so the two-tower user tower, the
  co-visitation and content sources read them as the feed reads watched films;
- everything mentioned, and a page the person says they saw ("I already saw those"),
  is excluded from the picks;
- disliked titles are excluded and never count as taste.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from app.funnel import UserState
from llm.intent import RetrievalQuery

MAX_TITLES = 50  # per list: a session is small, and old mentions matter less


@dataclass
class ConversationState:
    """The session's titles, oldest first, and the page last shown."""

    liked: list[int] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    shown: list[int] = field(default_factory=list)

    @classmethod
    def from_session(cls, session: dict) -> ConversationState:
        raw = session.get("titles") or {}
        return cls(*(list(map(int, raw.get(k, []))) for k in ("liked", "seen", "disliked")))

    def to_session(self) -> dict:
        return {"liked": self.liked, "seen": self.seen, "disliked": self.disliked}

    def add(self, query: RetrievalQuery, shown: list[int]) -> None:
        """This turn's titles; a later stance replaces an earlier one ("loved it" after
        "have you seen it?"). `shown`: the page shown before this turn."""
        if query.seen_shown:
            self._put(self.seen, shown)
        known = self.mentioned()  # a title carried over from an earlier query keeps its stance
        self._put(self.liked, [i for i in query.similar_to if i not in known])
        self._put(self.seen, query.seen)
        self._put(self.disliked, query.disliked)

    def _put(self, target: list[int], items: list[int]) -> None:
        for item in items:
            for other in (self.liked, self.seen, self.disliked):
                if item in other:
                    other.remove(item)
            target.append(int(item))
        del target[:-MAX_TITLES]

    @property
    def taste(self) -> list[int]:
        """Titles that say what the person enjoys: liked, then seen."""
        return [*self.liked, *self.seen]

    def mentioned(self) -> frozenset[int]:
        return frozenset([*self.liked, *self.seen, *self.disliked])


def with_conversation(user: UserState, state: ConversationState, now: int) -> UserState:
    """The user as this conversation knows them: their history plus the session's taste
    titles (stamped now, the newest events), and every title mentioned excluded."""
    known = set(np.asarray(user.history).tolist())
    extra = [i for i in state.taste if i not in known]
    history = np.concatenate(
        [np.asarray(user.history, dtype=np.int64), np.asarray(extra, np.int64)]
    )
    times = np.concatenate(
        [np.asarray(user.history_times, dtype=np.int64), np.full(len(extra), now, dtype=np.int64)]
    )
    return replace(
        user,
        history=history,
        history_times=times,
        disliked=frozenset(user.disliked) | state.mentioned(),
    )
