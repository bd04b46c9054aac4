"""The Gradio UI (chat, feed + onboarding, prompt lab), mounted in the FastAPI app at /ui.

The service is created in the FastAPI lifespan, after this UI is built, so every
handler asks `get_service()` at call time. Handlers call the service in-process
(ui/handlers.py); this module only lays out components and maps results onto
them. Events are `api_visibility="private"`: the key-protected `/v1` API is the
programmatic surface, and the UI must not become a second, unauthenticated one.

Sign-in: Gradio's login form checks the local user store (app/security/users.py); every
handler acts as the signed-in account's user id, read from the request on the server,
never from a field the browser could change. The prompt lab needs an admin account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from app.security.users import Account, UserStore
from ui import handlers as h
from ui.cards import CSS, cards_html, choice_label

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.service import Service

log = logging.getLogger("marquee.ui")

GetService = Callable[[], "Service"]
Me = Callable[[gr.Request], Account]  # the signed-in account of a request, or UIError
CONCURRENCY = 8  # handlers run in a thread pool; the service is thread-safe
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
EXAMPLES = [
    "a funny animated movie for the kids",
    "a 90s thriller, nothing too violent",
    "something like Star Wars but older",
    "a romantic comedy for a rainy Sunday",
]
CHAT_EMPTY = "Ask for a mood, a genre or “something like …”: the picks appear here."
FEED_EMPTY = "Press “Show feed” for your page; new here? tell us what you like below."


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


def _who(service: Service, account: Account) -> str:
    role = " · admin" if account.admin else ""
    return f"Signed in as **{account.username}**{role}. {h.describe_user(service, account.user_id)}"


# tabs --------------------------------------------------------------------------------------


def _chat_tab(get_service: GetService, me: Me, spend_llm: Callable[[int], bool]) -> None:
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
        text: str, session_id: str | None, history: list | None, n: float, request: gr.Request
    ) -> Iterator[tuple]:
        try:
            user_id = me(request).user_id
            turns = h.chat_turn(
                get_service(), user_id, text, session_id, history, int(n), spend_llm(user_id)
            )
            first = True
            for view in turns:
                empty = "Nothing matched; try loosening the request." if view.done else "…"
                html = cards_html(
                    view.cards, empty=empty, state="done" if view.done else "streaming"
                )
                cleared, first = ("" if first else gr.skip()), False
                yield view.history, html, view.session_id, _choices(view.cards), view.note, cleared
        except Exception as exc:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), _error(exc), gr.skip()

    outputs = [chatbot, cards, session, pick, note, message]
    inputs = [message, session, chatbot, count]
    message.submit(reply, inputs, outputs, **PRIVATE)
    send.click(reply, inputs, outputs, **PRIVATE)

    def restart() -> tuple:
        return [], cards_html([], empty=CHAT_EMPTY), None, gr.Dropdown(choices=[], value=None), ""

    reset.click(restart, None, [chatbot, cards, session, pick, note], **PRIVATE)
    chatbot.clear(restart, None, [chatbot, cards, session, pick, note], **PRIVATE)

    def thumb(kind: h.Thumb) -> Callable[[Any, gr.Request], str]:
        def send_thumb(item: Any, request: gr.Request) -> str:
            try:
                service = get_service()
                title = h.send_thumb(service, me(request).user_id, item, kind)
            except Exception as exc:
                return _error(exc)
            verb = "Saved: you liked" if kind == "like" else "Saved: you disliked"
            return f"{verb} {title}. Your next feed takes it into account."

        return send_thumb

    up.click(thumb("like"), [pick], thumbs_note, **PRIVATE)
    down.click(thumb("dislike"), [pick], thumbs_note, **PRIVATE)


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
    get_service: GetService, me: Me, who: gr.Markdown
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
    _wire_feed(get_service, me, feed, show, like, dislike)
    return _onboarding(get_service, me, who, feed)


def _wire_feed(
    get_service: GetService,
    me: Me,
    feed: _FeedControls,
    show: gr.Button,
    like: gr.Button,
    dislike: gr.Button,
) -> None:
    """Show feed, and Like / Dislike, which refresh the feed: the signed-in user's own."""
    settings = [feed.k, feed.kids]

    def show_feed(n: float, for_kids: bool, request: gr.Request) -> tuple:
        try:
            service = get_service()
            user_id = me(request).user_id
            return _feed_outputs(h.feed_view(service, user_id, int(n), bool(for_kids)))
        except Exception as exc:
            return gr.skip(), gr.skip(), _error(exc)

    show.click(show_feed, settings, feed.outputs, **PRIVATE)

    def thumb(kind: h.Thumb) -> Callable[..., tuple]:
        def rate(item: Any, n: float, for_kids: bool, request: gr.Request) -> tuple:
            try:
                service = get_service()
                user_id = me(request).user_id
                view = h.thumb_and_refresh(service, user_id, item, kind, int(n), bool(for_kids))
                return _feed_outputs(view)
            except Exception as exc:
                return gr.skip(), gr.skip(), _error(exc)

        return rate

    rated = [feed.pick, feed.k, feed.kids]
    like.click(thumb("like"), rated, feed.outputs, **PRIVATE)
    dislike.click(thumb("dislike"), rated, feed.outputs, **PRIVATE)


def _onboarding(
    get_service: GetService, me: Me, who: gr.Markdown, feed: _FeedControls
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
        picked: list[str],
        text: str,
        years: str,
        sex: str,
        n: float,
        for_kids: bool,
        request: gr.Request,
    ) -> tuple:
        try:
            service = get_service()
            account = me(request)
            user = h.onboard(service, picked, text, years, sex, user_id=account.user_id)
            view = h.feed_view(service, user.user_id, int(n), bool(for_kids))
        except Exception as exc:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), _error(exc)
        seeds = [*user.liked_genres, *(service.funnel.title(i) for i in user.liked_item_ids)]
        done = f"Welcome, user {user.user_id}! Your feed starts from {', '.join(seeds)}."
        html, choices, _ = _feed_outputs(view)
        return _who(service, account), html, choices, "", done

    create.click(
        sign_up,
        [genres, titles, age, gender, feed.k, feed.kids],
        [who, *feed.outputs, onboard_note],
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


def _admin_only(get_service: GetService, accounts: Accounts | None) -> GetService:
    """The service for the prompt lab's actions, for admin accounts only: previews and eval
    runs spend the server's LLM, saves and roll-outs change what production serves."""

    def admin_service() -> Service:
        from gradio.context import LocalContext

        from ui.prompt_lab import LabError

        request = LocalContext.request.get(None)
        account = accounts(getattr(request, "username", None)) if accounts else None
        if account is None or not account.admin:
            raise LabError("The prompt lab needs an admin account: sign in as one.")
        return get_service()

    return admin_service


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

Accounts = Callable[[str | None], Account | None]


def _signed_in(accounts: Accounts | None) -> Me:
    def me(request: gr.Request) -> Account:
        account = accounts(getattr(request, "username", None)) if accounts else None
        if account is None:
            raise h.UIError("Sign in first: reload the page to see the sign-in form.")
        return account

    return me


def build_ui(
    get_service: GetService,
    accounts: Accounts | None = None,
    spend_llm: Callable[[int], bool] = lambda user_id: True,
) -> gr.Blocks:
    """The whole UI; `get_service` is called per action, never while building. `accounts`
    maps a signed-in name to its account (None: nobody is signed in, every action says
    so); `spend_llm(user_id)` takes one of the user's daily LLM turns (False: rules only)."""
    me = _signed_in(accounts)
    with gr.Blocks(title="Marquee", analytics_enabled=False) as blocks:
        gr.Markdown("## Marquee\nTell it your mood, browse your feed, thumbs up what you like.")
        with gr.Row(equal_height=True):
            who = gr.Markdown(elem_id="user-who")
            gr.Button("Sign out", link="/ui/logout", scale=0, min_width=110, size="sm")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                _chat_tab(get_service, me, spend_llm)
            with gr.Tab("Feed", id="feed"):
                genres, genre_choices = _feed_tab(get_service, me, who)
            with gr.Tab("Prompt lab", id="prompt-lab"):
                _prompt_lab_tab(_admin_only(get_service, accounts))

        def describe(request: gr.Request) -> str:
            try:
                return _who(get_service(), me(request))
            except Exception as exc:
                return _error(exc)

        blocks.load(describe, None, who, **PRIVATE)
        blocks.load(genre_choices, None, genres, **PRIVATE)
    return blocks


def mount_ui(app: FastAPI, path: str = "/ui") -> FastAPI:
    """Mount the UI on `app` behind sign-in; the service is read from `app.state` at call
    time, the accounts from the user store of the app's settings (re-read on change)."""

    def get_service() -> Service:
        service = app.state.service
        if service is None:
            raise h.UIError("The service is still starting; try again in a few seconds.")
        return service

    users = UserStore(app.state.settings.ui_users_file)
    limits = app.state.limits

    def spend_llm(user_id: int) -> bool:
        if limits.check("chat", f"user:{user_id}") is not None:
            raise h.UIError("You are sending messages too fast; wait a minute and try again.")
        return limits.llm_turn(f"user:{user_id}")

    def sign_in(username: str, password: str) -> bool:
        """Gradio's auth hook; password guessing meets the login budget per name."""
        if limits.check("login", f"login:{username[:64]}") is not None:
            log.warning("sign-in attempts over budget for %r", username[:64])
            return False
        return users.verify(username, password)

    blocks = build_ui(get_service, users.get, spend_llm)
    blocks.queue(default_concurrency_limit=CONCURRENCY)
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
    gr.mount_gradio_app(
        app,
        blocks,
        path=path,
        auth=sign_in,
        auth_message="Sign in to see your feed"
        + (" (development accounts: demo/demo, admin/admin)." if users.dev else "."),
        theme=theme,
        css=CSS,
        ssr_mode=False,
        footer_links=[],
        run_history=False,
        show_error=False,
    )
    return app
