"""The Gradio UI (chat, feed + onboarding, prompt lab), mounted in the FastAPI app at /ui.

The service is created in the FastAPI lifespan, after this UI is built, so every
handler asks `get_service()` at call time. Handlers call the service in-process
(ui/handlers.py); this module only lays out components and maps results onto
them. Events are `api_visibility="private"`: the key-protected `/v1` API is the
programmatic surface, and the UI must not become a second, unauthenticated one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from ui import handlers as h
from ui.cards import CSS, cards_html, choice_label

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.service import Service

log = logging.getLogger("marquee.ui")

GetService = Callable[[], "Service"]
CONCURRENCY = 8  # handlers run in a thread pool; the service is thread-safe
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
EXAMPLES = [
    "a funny animated movie for the kids",
    "a 90s thriller, nothing too violent",
    "something like Star Wars but older",
    "a romantic comedy for a rainy Sunday",
]
CHAT_EMPTY = "Ask for a mood, a genre or “something like …”: the picks appear here."
FEED_EMPTY = "Pick a user id above (e.g. 7) and press “Show feed”, or create a new user."


def _error(exc: BaseException) -> str:
    """One line for the screen; the traceback goes to the log, never to the user."""
    if isinstance(exc, h.UIError):
        return f"⚠️ {exc}"
    log.exception("UI action failed", exc_info=exc)
    return f"⚠️ Something went wrong ({type(exc).__name__}); it was logged. Please try again."


def _choices(cards: Sequence[dict[str, Any]]) -> gr.Dropdown:
    options = [(choice_label(c), int(c["item_id"])) for c in cards]
    return gr.Dropdown(choices=options, value=options[0][1] if options else None)


def _feed_outputs(view: h.FeedView) -> tuple[str, gr.Dropdown, str]:
    html = cards_html(
        view.cards,
        empty="No titles to show for these settings.",
        banner=h.stale_banner(view.stale),
        meta=h.feed_meta(view),
    )
    return html, _choices(view.cards), view.note


# tabs --------------------------------------------------------------------------------------


def _chat_tab(get_service: GetService, user_box: gr.Textbox) -> None:
    session = gr.State(None)  # per browser session: follow-ups refine the last query
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            chatbot = gr.Chatbot(
                label="Conversation",
                height=430,
                elem_id="chat-log",
                placeholder="What do you feel like watching?",
                buttons=["copy", "copy_all"],
            )
            with gr.Row():
                message = gr.Textbox(
                    show_label=False,
                    scale=5,
                    max_length=h.MAX_MESSAGE,
                    placeholder="e.g. a funny animated movie for the kids",
                    elem_id="chat-input",
                    autofocus=True,
                )
                send = gr.Button(
                    "Send", variant="primary", scale=1, min_width=80, elem_id="chat-send"
                )
            with gr.Row():
                count = gr.Slider(3, 24, value=8, step=1, label="How many picks", scale=3)
                reset = gr.Button("New conversation", scale=1, size="sm")
            gr.Examples(EXAMPLES, inputs=[message], label="Try")
        with gr.Column(scale=3, min_width=320):
            note = gr.Markdown(elem_id="chat-note")
            cards = gr.HTML(cards_html([], empty=CHAT_EMPTY), elem_id="chat-cards")
            with gr.Row(equal_height=True):
                pick = gr.Dropdown(label="Rate a pick", choices=[], scale=4, elem_id="chat-pick")
                up = gr.Button("Like", scale=1, min_width=90, elem_id="chat-like")
                down = gr.Button("Dislike", scale=1, min_width=90, elem_id="chat-dislike")
            thumbs_note = gr.Markdown(elem_id="chat-thumbs-note")

    def reply(
        user_text: str, text: str, session_id: str | None, history: list | None, n: float
    ) -> Iterator[tuple]:
        try:
            service = get_service()
            user_id = h.parse_user_id(user_text, required=False)
            first = True
            for view in h.chat_turn(service, user_id, text, session_id, history, int(n)):
                empty = "Nothing matched; try loosening the request." if view.done else "…"
                html = cards_html(
                    view.cards, empty=empty, state="done" if view.done else "streaming"
                )
                cleared = "" if first else gr.skip()
                first = False
                yield view.history, html, view.session_id, _choices(view.cards), view.note, cleared
        except Exception as exc:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), _error(exc), gr.skip()

    outputs = [chatbot, cards, session, pick, note, message]
    inputs = [user_box, message, session, chatbot, count]
    message.submit(reply, inputs, outputs, **PRIVATE)
    send.click(reply, inputs, outputs, **PRIVATE)

    def restart() -> tuple:
        return [], cards_html([], empty=CHAT_EMPTY), None, gr.Dropdown(choices=[], value=None), ""

    reset.click(restart, None, [chatbot, cards, session, pick, note], **PRIVATE)
    chatbot.clear(restart, None, [chatbot, cards, session, pick, note], **PRIVATE)

    def thumb(kind: h.Thumb) -> Callable[[str, Any], str]:
        def send_thumb(user_text: str, item: Any) -> str:
            try:
                service = get_service()
                user_id = h.parse_user_id(user_text, required=True)
                title = h.send_thumb(service, user_id, item, kind)
            except Exception as exc:
                return _error(exc)
            verb = "Saved: you liked" if kind == "like" else "Saved: you disliked"
            return f"{verb} {title}. Your next feed takes it into account."

        return send_thumb

    up.click(thumb("like"), [user_box, pick], thumbs_note, **PRIVATE)
    down.click(thumb("dislike"), [user_box, pick], thumbs_note, **PRIVATE)


@dataclass(frozen=True)
class _FeedControls:
    """The feed's settings and what every feed-changing event writes (cards, pick, note)."""

    k: gr.Slider
    kids: gr.Checkbox
    cards: gr.HTML
    pick: gr.Dropdown
    note: gr.Markdown

    @property
    def outputs(self) -> list:
        return [self.cards, self.pick, self.note]


def _feed_tab(
    get_service: GetService, user_box: gr.Textbox, who: gr.Markdown
) -> tuple[gr.CheckboxGroup, Callable[[], gr.CheckboxGroup]]:
    """The feed with its thumbs, and onboarding; returns the genre picker and its loader
    (the genres come from the service, which exists only once the page is served)."""
    with gr.Row(equal_height=True):
        k = gr.Slider(4, 40, value=12, step=1, label="Titles", scale=3)
        kids = gr.Checkbox(label="Kids profile", value=False, scale=1)
        show = gr.Button("Show feed", variant="primary", scale=1, elem_id="feed-show")
    note = gr.Markdown(elem_id="feed-note")
    cards = gr.HTML(cards_html([], empty=FEED_EMPTY), elem_id="feed-cards")
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(
            label="Rate a title from this feed", choices=[], scale=4, elem_id="feed-pick"
        )
        like = gr.Button("Like", scale=1, min_width=90, elem_id="feed-like")
        dislike = gr.Button("Dislike", scale=1, min_width=90, elem_id="feed-dislike")
    feed = _FeedControls(k, kids, cards, pick, note)
    _wire_feed(get_service, user_box, feed, show, like, dislike)
    return _onboarding(get_service, user_box, who, feed)


def _wire_feed(
    get_service: GetService,
    user_box: gr.Textbox,
    feed: _FeedControls,
    show: gr.Button,
    like: gr.Button,
    dislike: gr.Button,
) -> None:
    """Show feed (or Enter in the user box), and Like / Dislike, which refresh the feed."""
    settings = [user_box, feed.k, feed.kids]

    def show_feed(user_text: str, n: float, for_kids: bool) -> tuple:
        try:
            service = get_service()
            user_id = h.parse_user_id(user_text, required=True)
            assert user_id is not None
            return _feed_outputs(h.feed_view(service, user_id, int(n), bool(for_kids)))
        except Exception as exc:
            return gr.skip(), gr.skip(), _error(exc)

    show.click(show_feed, settings, feed.outputs, **PRIVATE)
    user_box.submit(show_feed, settings, feed.outputs, **PRIVATE)

    def thumb(kind: h.Thumb) -> Callable[..., tuple]:
        def rate(user_text: str, item: Any, n: float, for_kids: bool) -> tuple:
            try:
                service = get_service()
                user_id = h.parse_user_id(user_text, required=True)
                view = h.thumb_and_refresh(service, user_id, item, kind, int(n), bool(for_kids))
                return _feed_outputs(view)
            except Exception as exc:
                return gr.skip(), gr.skip(), _error(exc)

        return rate

    rated = [user_box, feed.pick, feed.k, feed.kids]
    like.click(thumb("like"), rated, feed.outputs, **PRIVATE)
    dislike.click(thumb("dislike"), rated, feed.outputs, **PRIVATE)


def _onboarding(
    get_service: GetService, user_box: gr.Textbox, who: gr.Markdown, feed: _FeedControls
) -> tuple[gr.CheckboxGroup, Callable[[], gr.CheckboxGroup]]:
    """The sign-up accordion: a new user from genres and titles, shown their first feed."""
    with gr.Accordion("New here? Tell us what you like", open=False, elem_id="onboarding"):
        genres = gr.CheckboxGroup(label="Genres you enjoy", choices=[], elem_id="onboard-genres")
        titles = gr.Textbox(
            label="Titles you liked (one per line)",
            lines=3,
            placeholder="toy story\nthe matrix",
            elem_id="onboard-titles",
        )
        with gr.Row():
            age = gr.Textbox(label="Age (optional)", max_length=3, elem_id="onboard-age")
            gender = gr.Radio(
                [("Prefer not to say", ""), ("Female", "F"), ("Male", "M")],
                value="",
                label="Gender (optional)",
            )
        create = gr.Button("Create my profile", variant="primary", elem_id="onboard-create")
        onboard_note = gr.Markdown(elem_id="onboard-note")

    def sign_up(
        picked: list[str], text: str, years: str, sex: str, n: float, for_kids: bool
    ) -> tuple:
        try:
            service = get_service()
            user = h.onboard(service, picked, text, years, sex)
            view = h.feed_view(service, user.user_id, int(n), bool(for_kids))
        except Exception as exc:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), _error(exc)
        seeds = [*user.liked_genres, *(service.funnel.title(i) for i in user.liked_item_ids)]
        done = f"Welcome, user {user.user_id}! Your feed starts from {', '.join(seeds)}."
        html, choices, _ = _feed_outputs(view)
        return str(user.user_id), h.describe_user(service, user.user_id), html, choices, "", done

    create.click(
        sign_up,
        [genres, titles, age, gender, feed.k, feed.kids],
        [user_box, who, *feed.outputs, onboard_note],
        **PRIVATE,
    )

    def genre_choices() -> gr.CheckboxGroup:
        try:
            names = list(get_service().funnel.meta.genre_names)
        except Exception as exc:
            log.info("genres not loaded yet: %s", exc)
            names = []
        return gr.CheckboxGroup(choices=names)

    return genres, genre_choices


def _prompt_lab_tab(get_service: GetService) -> None:
    """Another module owns the prompt lab; a missing or broken one must not take the UI."""
    try:
        from ui.prompt_lab import prompt_lab_tab
    except ImportError as exc:
        log.info("prompt lab unavailable: %s", exc)
        gr.Markdown("Prompt lab unavailable in this build.", elem_id="prompt-lab-unavailable")
        return
    try:
        prompt_lab_tab(get_service)
    except Exception:
        log.exception("prompt lab failed to build")
        gr.Markdown(
            "Prompt lab unavailable: it failed to load (see the server log).",
            elem_id="prompt-lab-unavailable",
        )


# assembly ----------------------------------------------------------------------------------


def build_ui(get_service: GetService) -> gr.Blocks:
    """The whole UI; `get_service` is called per action, never while building."""
    with gr.Blocks(title="Marquee", analytics_enabled=False) as blocks:
        gr.Markdown("## Marquee\nTell it your mood, browse your feed, thumbs up what you like.")
        with gr.Row(equal_height=False):
            user_box = gr.Textbox(
                label="User id",
                scale=1,
                max_length=20,
                elem_id="user-id",
                placeholder="e.g. 7, or empty to chat anonymously",
            )
            new_user = gr.Button("New user", scale=0, min_width=110, size="md", elem_id="new-user")
            who = gr.Markdown(elem_id="user-who")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                _chat_tab(get_service, user_box)
            with gr.Tab("Feed", id="feed"):
                genres, genre_choices = _feed_tab(get_service, user_box, who)
            with gr.Tab("Prompt lab", id="prompt-lab"):
                _prompt_lab_tab(get_service)

        def describe(user_text: str) -> str:
            try:
                user_id = h.parse_user_id(user_text, required=False)
                return h.describe_user(get_service(), user_id)
            except Exception as exc:
                return _error(exc)

        user_box.blur(describe, user_box, who, **PRIVATE)
        user_box.submit(describe, user_box, who, **PRIVATE)
        blocks.load(describe, user_box, who, **PRIVATE)
        blocks.load(genre_choices, None, genres, **PRIVATE)

        def create_user() -> tuple[str, str]:
            try:
                service = get_service()
                user_id = h.new_user(service)
                return str(user_id), h.describe_user(service, user_id)
            except Exception as exc:
                return gr.skip(), _error(exc)

        new_user.click(create_user, None, [user_box, who], **PRIVATE)
    return blocks


def mount_ui(app: FastAPI, path: str = "/ui") -> FastAPI:
    """Mount the UI on `app`; the service is read from `app.state` at call time."""

    def get_service() -> Service:
        service = app.state.service
        if service is None:
            raise h.UIError("The service is still starting; try again in a few seconds.")
        return service

    blocks = build_ui(get_service)
    blocks.queue(default_concurrency_limit=CONCURRENCY)
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
    gr.mount_gradio_app(
        app,
        blocks,
        path=path,
        theme=theme,
        css=CSS,
        ssr_mode=False,
        footer_links=[],
        run_history=False,
        show_error=False,
    )
    return app
