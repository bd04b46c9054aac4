"""Safe defaults and the UI's trust: no public credentials beyond loopback, masked URLs,
sign-in before the UI answers, an admin for the prompt lab. No bundle needed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from app import cli_serving
from app.errors import UsageError
from app.security.exposure import exposure_problems, is_loopback, mask_url
from app.security.users import UserStore, add_user, check_password
from app.settings import Settings

from .conftest import REPO_ROOT, run_marquee
from .keys import API_KEYS


def safe_settings(tmp_path: Path, **extra) -> Settings:
    users = tmp_path / "users.toml"
    add_user(users, "ann", 7, "user", "correct horse")
    return Settings(
        api_keys=API_KEYS.get_secret_value().split(",", 1)[1], ui_users_file=users, **extra
    )


def test_serving_beyond_loopback_with_the_dev_key_or_dev_accounts_is_refused(tmp_path) -> None:
    proc = run_marquee(tmp_path / "artifacts", tmp_path, "serve", "--host", "0.0.0.0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "refusing to serve on 0.0.0.0" in proc.stderr
    assert "MARQUEE_API_KEYS" in proc.stderr and "MARQUEE_UI_USERS_FILE" in proc.stderr
    assert exposure_problems(safe_settings(tmp_path), "0.0.0.0") == []
    assert exposure_problems(Settings(), "127.0.0.1") == []  # development stays easy


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_means_loopback(host, loopback) -> None:
    assert is_loopback(host) is loopback


def test_marquee_serve_prints_the_redis_url_with_its_password_masked(
    tmp_path, monkeypatch, capsys
) -> None:
    settings = safe_settings(tmp_path, redis_url="redis://:hunter2@127.0.0.1:6379/0")
    monkeypatch.setattr(cli_serving, "get_settings", lambda: settings)
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    cli_serving.console.file = None  # rich prints to the captured stdout
    cli_serving.serve_cmd(host="0.0.0.0", port=8123, workers=1, with_worker=False)
    out = capsys.readouterr().out
    assert "redis://:***@127.0.0.1:6379/0" in out and "hunter2" not in out
    assert mask_url("redis://user:pw@[::1]:6380/1") == "redis://user:***@[::1]:6380/1"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_serve_refuses_in_process_too(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cli_serving, "get_settings", lambda: Settings())
    with pytest.raises(UsageError, match="development key"):
        cli_serving.serve_cmd(host="0.0.0.0", port=8123, workers=1, with_worker=False)


def test_the_dockerfile_binds_all_addresses_only_with_credentials_set() -> None:
    docker = (REPO_ROOT / "Dockerfile").read_text()
    assert "MARQUEE_HOST=0.0.0.0" in docker  # so `marquee up` refuses until keys are set
    assert "MARQUEE_API_KEYS" in docker and "MARQUEE_UI_USERS_FILE" in docker


def test_the_user_store_hashes_passwords_and_reloads_on_change(tmp_path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "ann", 7, "user", "correct horse")
    assert "correct horse" not in path.read_text()
    store = UserStore(path)
    assert store.verify("ann", "correct horse") and not store.verify("ann", "wrong")
    assert not store.verify("bob", "correct horse")
    add_user(path, "bob", 8, "admin", "battery staple")
    import time

    time.sleep(1.1)
    assert store.verify("bob", "battery staple") and store.get("bob").admin
    stored = store.get("ann").password_hash
    assert stored.startswith("scrypt$") and check_password("correct horse", stored)
    with pytest.raises(ValueError, match="username"):
        add_user(path, 'x"]\n[[users]]', 9, "admin", "password1")


# the UI -----------------------------------------------------------------------------------


def test_the_ui_answers_nothing_before_sign_in(api) -> None:
    assert api.get("/ui/config").status_code == 401
    join = api.post("/ui/gradio_api/queue/join", json={"fn_index": 0, "data": []})
    assert join.status_code == 401
    bad = api.post("/ui/login", data={"username": "demo", "password": "nope"})
    assert bad.status_code == 400
    ok = api.post("/ui/login", data={"username": "demo", "password": "demo"})
    assert ok.status_code == 200
    assert api.get("/ui/config").status_code == 200


def test_the_prompt_lab_acts_for_admins_only(api_service) -> None:
    from gradio.context import LocalContext

    from ui import prompt_lab as lab
    from ui.app import _admin_only

    store = UserStore(None)
    lab_service = _admin_only(lambda: api_service, store.get)
    for who in (None, "demo"):
        LocalContext.request.set(SimpleNamespace(username=who))
        with pytest.raises(lab.LabError, match="admin account"):
            lab_service()
    LocalContext.request.set(SimpleNamespace(username="admin"))
    assert lab_service() is api_service
    LocalContext.request.set(None)


def test_a_draft_cannot_name_any_model(api_service) -> None:
    from ui import prompt_lab as lab

    with pytest.raises(lab.LabError, match="not allowed"):
        lab.client_of(api_service, "openai/gpt-4o")


def test_password_guessing_meets_the_login_budget(api_service) -> None:
    from fastapi.testclient import TestClient

    from ui.server import create_app

    prefix = f"{api_service.settings.redis_prefix}-login"
    settings = api_service.settings.model_copy(
        update={"rate_login": "3/minute", "redis_prefix": prefix}
    )
    with TestClient(create_app(api_service, settings)) as client:
        wrong = {"username": "demo", "password": "guess"}
        assert [client.post("/ui/login", data=wrong).status_code for _ in range(3)] == [400] * 3
        right = {"username": "demo", "password": "demo"}
        assert client.post("/ui/login", data=right).status_code == 400  # over budget
        other = {"username": "admin", "password": "admin"}
        assert client.post("/ui/login", data=other).status_code == 200  # per name


def test_keys_and_users_are_made_from_the_command_line(tmp_path) -> None:
    import re

    from typer.testing import CliRunner

    from app.cli import app
    from app.security.keys import KeyRing

    runner = CliRunner()
    out = runner.invoke(app, ["keys", "new", "--scope", "read", "--scope", "events"])
    assert out.exit_code == 0, out.output
    key = re.search(r"shown once; give it to the client\): (\S+)", out.output).group(1)
    entry = re.search(r"MARQUEE_API_KEYS entry: (\S+)", out.output).group(1)
    assert key not in entry and KeyRing(entry).lookup(key).scopes == {"read", "events"}
    bad = runner.invoke(app, ["keys", "new", "--scope", "root"])
    assert bad.exit_code != 0 and "unknown" in str(bad.exception) + bad.output
    users = tmp_path / "users.toml"
    args = ["users", "add", "ann", "--user-id", "7", "--file", str(users)]
    added = runner.invoke(app, [*args, "--password", "correct horse"])
    assert added.exit_code == 0, added.output
    assert UserStore(users).verify("ann", "correct horse")
