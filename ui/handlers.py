"""What each UI action does, against the service in-process; no Gradio in here.

The UI calls the same `Service` methods the API routes call (not the API over
HTTP), so it shows exactly what a client would get, without a network hop or an
API key. Keeping this layer free of Gradio lets the tests drive every action
directly, and keeps the layout module about layout. Bad input and unavailable
dependencies surface as `UIError`, whose message is meant for the person at the
screen; anything unexpected is logged and turned into a one-line apology.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from app.funnel import FeedQuery, UserState
from app.schemas import Demographics
from app.service import Unavailable
from features.events import Event, EventType

if TYPE_CHECKING:
    from app.service import Service

log = logging.getLogger("marquee.ui")

MAX_MESSAGE = 500  # as POST /v1/chat
MAX_USER_ID = 2**62
MAX_TITLES = 20
APPLY_WAIT_S = 1.0  # how long a thumbs waits for the nearline worker before re-reading
Thumb = Literal["like", "dislike"]


class UIError(ValueError):
    """A problem the person at the screen can fix or should know about; shown verbatim."""


# users -------------------------------------------------------------------------------------


def parse_user_id(raw: str | float | None, *, required: bool) -> int | None:
    """The picker's text as a user id; empty means anonymous where that is allowed."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        if required:
            raise UIError("Pick a user id first, or create a new user.")
        return None
    try:
        value = float(text)
    except ValueError:
        raise UIError(f"User id must be a whole number, not {text!r}.") from None
    if not value.is_integer() or not 1 <= value <= MAX_USER_ID:
        raise UIError(f"User id must be a whole number from 1 up, not {text!r}.")
    return int(value)


def describe_user(service: Service, user_id: int | None) -> str:
    """One line saying who the UI is acting as, so a typo'd id does not go unnoticed."""
    if user_id is None:
        return "Anonymous: chat works, but thumbs need a user."
    state, known = service.user_state(user_id)
    stale = " (live data unavailable: showing saved features)" if state.stale else ""
    if not known:
        return f"User {user_id} is new here: recommendations start from what is popular.{stale}"
    catalog = "catalog user" if user_id <= service.max_catalog_user else "user"
    seen = len(state.history)
    return f"{catalog.capitalize()} {user_id}: {seen} title{'s' * (seen != 1)} in history.{stale}"


def new_user(service: Service) -> int:
    """A fresh user with an empty profile, exactly what an empty POST /v1/users creates."""
    profile: dict[str, Any] = {"demographics": {}, "liked_genres": [], "liked_item_ids": []}
    try:
        return service.onboard(None, profile)
    except Unavailable as exc:
        raise UIError(f"Could not create a user: {exc}") from exc


# chat --------------------------------------------------------------------------------------


@dataclass
class ChatView:
    """One frame of a streamed chat reply: the whole conversation so far plus the cards."""

    history: list[dict[str, str]]
    cards: list[dict[str, Any]] = field(default_factory=list)
    session_id: str | None = None
    note: str = ""
    done: bool = False


def describe_query(query: Mapping[str, Any], shown: int, title_of: Callable[[int], str]) -> str:
    """The reply when no LLM text arrives: what was understood, so the user can correct it."""
    parts: list[str] = []
    if query.get("include_genres"):
        parts.append(_and(query["include_genres"]))
    lo, hi = query.get("year_min"), query.get("year_max")
    if lo and hi:
        parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
    elif lo:
        parts.append(f"from {lo} on")
    elif hi:
        parts.append(f"up to {hi}")
    if query.get("exclude_genres"):
        parts.append("no " + ", ".join(query["exclude_genres"]))
    if query.get("max_runtime"):
        parts.append(f"under {query['max_runtime']} min")
    if query.get("language"):
        parts.append(f"language: {query['language']}")
    if query.get("similar_to"):
        parts.append("like " + ", ".join(title_of(i) for i in query["similar_to"][:3]))
    if query.get("mood_terms"):
        parts.append("mood: " + ", ".join(query["mood_terms"][:4]))
    understood = " · ".join(parts) or f"“{query.get('text', '')}”"
    if not shown:
        return (
            f"I looked for {understood}, but nothing in the catalog fits all of that. "
            "Try loosening one constraint (a wider decade, fewer exclusions)."
        )
    picks = f"{shown} pick{'s' * (shown != 1)}"
    return (
        f"Here are {picks} for {understood}. "
        "Refine with a follow-up like “something older” or “no romance”."
    )


def chat_turn(
    service: Service,
    user_id: int | None,
    message: str,
    session_id: str | None,
    history: Sequence[Mapping[str, Any]] | None,
    count: int | None = None,
    use_llm: bool = True,
) -> Iterator[ChatView]:
    """Stream one chat turn as frames: the question, the cards, the reply text as it comes.

    Tokens are appended as they arrive and a `reply` event replaces them (the chat's
    own fallback, or a streamed reply that failed its check); when neither comes, the
    reply is a summary of the parsed request, so the user still sees what was
    understood. `explanations` replace the cards' template reasons as they arrive.
    """
    message = (message or "").strip()
    if not message:
        raise UIError("Type what you feel like watching, e.g. “a funny animated movie”.")
    if len(message) > MAX_MESSAGE:
        raise UIError(f"Please keep it under {MAX_MESSAGE} characters ({len(message)} now).")
    if count is not None and not 1 <= int(count) <= 50:
        raise UIError("Ask for between 1 and 50 titles.")
    user = service.user_state(user_id)[0] if user_id else UserState.anonymous()
    turns = [_message(m) for m in history or []]
    turns += [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
    reply, cards, query, sid = "", [], {}, session_id
    note = "Live features unavailable: results ignore your latest activity." if user.stale else ""
    yield ChatView(turns, cards, sid, note)
    count = int(count) if count is not None else None
    try:
        variant = service.chat_variant(user_id or None)
        events = service.chat().stream(
            service.funnel, user, message, session_id, count, use_llm, variant=variant
        )
        for event in events:
            name, data = event.get("event"), event.get("data")
            if name == "query":
                query = dict(data or {})
                turns[-1] = {"role": "assistant", "content": f"Looking for {_short(query)}…"}
            elif name == "items":
                cards = [dict(c) for c in data or []]
            elif name == "token" and data:
                reply += str(data)
                turns[-1] = {"role": "assistant", "content": reply}
            elif name == "reply" and data:  # the final text, replacing what was streamed
                reply = str(dict(data).get("text") or reply)
                turns[-1] = {"role": "assistant", "content": reply}
            elif name == "explanations" and data:
                reasons = {int(k): str(v) for k, v in dict(data).items()}
                cards = [
                    {**c, "reason": reasons.get(int(c["item_id"]), c["reason"])} for c in cards
                ]
            elif name == "done":
                sid = (data or {}).get("session_id") or sid
                continue
            else:
                continue
            yield ChatView(list(turns), cards, sid, note)
    except Exception:  # the conversation stays usable; the details go to the log
        log.exception("chat turn failed")
        sorry = "Sorry, I could not finish that answer (the error was logged). Please try again."
        turns[-1] = {"role": "assistant", "content": reply + ("\n\n" if reply else "") + sorry}
        yield ChatView(turns, cards, sid, note, done=True)
        return
    if not reply.strip():
        summary = describe_query(query, len(cards), service.funnel.title)
        turns[-1] = {"role": "assistant", "content": summary}
    yield ChatView(turns, cards, sid, note, done=True)


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _message(m: Mapping[str, Any]) -> dict[str, str]:
    """Gradio hands the history back with extra keys; keep what the Chatbot needs."""
    content = m.get("content", "")
    if isinstance(content, list):  # gradio 6 may normalise text to [{"type": "text", ...}]
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return {"role": str(m.get("role", "assistant")), "content": str(content)}


def _short(query: Mapping[str, Any]) -> str:
    genres = ", ".join(query.get("include_genres") or [])
    return f"{genres} titles" if genres else f"“{query.get('text', '')}”"


# feed --------------------------------------------------------------------------------------


@dataclass
class FeedView:
    user_id: int
    cards: list[dict[str, Any]]
    stage: str
    variant: str
    stale: bool
    known: bool
    request_id: str
    note: str = ""


def feed_view(service: Service, user_id: int, k: int = 12, kids: bool = False) -> FeedView:
    """The feed as GET /v1/users/{id}/feed builds it, plus best-effort impressions."""
    if not 1 <= int(k) <= 100:
        raise UIError("Show between 1 and 100 titles.")
    query = FeedQuery(k=int(k), maturity="kids" if kids else "adult")
    out = service.feed(user_id, query)
    summaries = service.funnel.summaries
    cards = [
        {
            **summaries[int(it.item_id)],
            "score": it.score,
            "sources": list(it.sources),
            "reason": it.reason,
        }
        for it in out.result.items
    ]
    view = FeedView(
        user_id, cards, out.result.stage, out.variant, out.stale, out.user_known, uuid.uuid4().hex
    )
    if not out.stale:
        _impressions(service, view)
    return view


def _impressions(service: Service, view: FeedView) -> None:
    """What a client should send per shown item (CTR, bandit); never worth failing a page."""
    events = [
        Event(
            event_id=f"ui-{uuid.uuid4().hex}",
            type=EventType.IMPRESSION,
            user_id=view.user_id,
            item_id=int(c["item_id"]),
            request_id=view.request_id,
            position=i,
        )
        for i, c in enumerate(view.cards)
    ]
    try:
        service.ingest(events)
    except Unavailable as exc:
        log.info("impressions not recorded: %s", exc)


def stale_banner(stale: bool) -> str:
    if not stale:
        return ""
    return (
        "Live features are unavailable (Redis is not answering): this feed comes from saved "
        "features and does not reflect your latest likes yet."
    )


def feed_meta(view: FeedView) -> str:
    stage = "personalized" if view.stage == "personalized" else f"cold start ({view.stage})"
    return f"User {view.user_id} · {stage} · variant {view.variant}"


# feedback ----------------------------------------------------------------------------------


def send_thumb(service: Service, user_id: int | None, item_id: Any, kind: Thumb) -> str:
    """Write a like/dislike as a real event (unique id); returns the title it was about."""
    if user_id is None:
        raise UIError("Thumbs are saved per user: pick a user id (or create one) first.")
    if item_id in (None, ""):
        raise UIError("Pick one of the shown titles first.")
    try:
        item = int(item_id)
    except (TypeError, ValueError):
        raise UIError(f"Unknown title {item_id!r}.") from None
    if item not in service.item_ids:
        raise UIError(f"Unknown title {item_id!r}.")
    event = Event(
        event_id=f"ui-{uuid.uuid4().hex}", type=EventType(kind), user_id=user_id, item_id=item
    )
    try:
        service.ingest([event])
    except Unavailable:
        msg = "Could not save that: the event log is unavailable; nothing was stored."
        raise UIError(msg) from None
    return service.funnel.title(item)


def wait_applied(
    service: Service, user_id: int, item_id: int, kind: Thumb, timeout_s: float = APPLY_WAIT_S
) -> bool:
    """Whether the event reached the user's features (in-line when embedded, via the worker
    with Redis): re-reading the feed before that would show the old one."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = service.user_state(user_id)[0]
        if kind == "like" and item_id in set(state.history.tolist()):
            return True
        if kind == "dislike" and item_id in state.disliked:
            return True
        if state.stale or time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def thumb_and_refresh(
    service: Service,
    user_id: int | None,
    item_id: Any,
    kind: Thumb,
    k: int = 12,
    kids: bool = False,
) -> FeedView:
    """A thumbs from the feed: store it, wait for it to apply, and show the next feed."""
    title = send_thumb(service, user_id, item_id, kind)
    assert user_id is not None  # send_thumb refused an anonymous thumbs
    applied = wait_applied(service, user_id, int(item_id), kind)
    view = feed_view(service, user_id, k, kids)
    verb = "Liked" if kind == "like" else "Disliked"
    after = "the feed below already reflects it." if applied else "it will show up shortly."
    view.note = f"{verb} {title}: {after}"
    return view


# onboarding --------------------------------------------------------------------------------


@dataclass
class Onboarded:
    user_id: int
    liked_genres: list[str]
    liked_item_ids: list[int]
    resolved_titles: dict[str, int]


def split_titles(text: str | None) -> list[str]:
    """One title per line (or `;`): commas are too common inside titles to split on."""
    raw = (text or "").replace(";", "\n").splitlines()
    return list(dict.fromkeys(t.strip() for t in raw if t.strip()))


def parse_age(raw: str | float | None) -> int | None:
    """Optional: empty means not given (a number box would send 0 for an empty field)."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UIError(f"Age must be a whole number, not {text!r}.") from None
    if not value.is_integer():
        raise UIError(f"Age must be a whole number, not {text!r}.")
    return int(value)  # the range is Demographics' to check, as in POST /v1/users


def onboard(
    service: Service,
    genres: Sequence[str] | None,
    titles_text: str | None,
    age: str | float | None = None,
    gender: str | None = None,
    user_id: int | None = None,
) -> Onboarded:
    """Create a user the way POST /v1/users does: validated demographics, catalog genres,
    and free-text titles resolved by title search (every miss is reported at once).
    `user_id` (a signed-in account's own id) is never overwritten, as in the API."""
    if user_id is not None and service.user_state(user_id)[1]:
        raise UIError(
            f"User {user_id} already has a profile: the feed follows what you watch and like."
        )
    vocab = {g.lower(): g for g in service.funnel.meta.genre_names}
    unknown = [g for g in genres or [] if g.lower() not in vocab]
    if unknown:
        raise UIError(f"Unknown genre(s): {', '.join(unknown)}.")
    picked = sorted({vocab[g.lower()] for g in genres or []})
    titles = split_titles(titles_text)
    if len(titles) > MAX_TITLES:
        raise UIError(f"Name at most {MAX_TITLES} titles ({len(titles)} now).")
    try:
        demographics = Demographics(age=parse_age(age), gender=gender or None)
    except ValidationError as exc:
        raise UIError(_readable(exc)) from None
    index = service.titles
    resolved: dict[str, int] = {}
    missing: list[str] = []
    for title in titles:
        hits = index.search(title, 1)
        if hits:
            resolved[title] = hits[0][0]
        else:
            missing.append(title)
    if missing:
        names = ", ".join(f"“{m}”" for m in missing)
        raise UIError(f"No title matches {names}; check the spelling or leave it out.")
    if not picked and not resolved:
        raise UIError("Pick at least one genre or name a title you liked.")
    liked = list(dict.fromkeys(resolved.values()))
    profile = {
        "demographics": demographics.model_dump(exclude_none=True),
        "liked_genres": picked,
        "liked_item_ids": liked,
    }
    try:
        user_id = service.onboard(user_id, profile)
    except Unavailable as exc:
        raise UIError(f"Could not create the user: {exc}") from exc
    return Onboarded(user_id, picked, liked, resolved)


def _readable(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )
