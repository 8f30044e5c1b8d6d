"""The pages' own CSS and JavaScript are files the app serves, linked from the page head by versioned URLs."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from feedback_ui import assets
from feedback_ui.app import create_app
from rlhf.inference import Inference
from tests import factories
from tests.api.conftest import PASSWORD

# name -> what its Content-Type says (the app sends nosniff: the browser goes by the type alone)
FILES = {"rlhf.css": "text/css", "rate.js": "javascript", "arena.js": "javascript"}


@pytest.fixture
def page_client(settings, session, test_engine_url):
    factories.user(session, "rita", password=PASSWORD)
    session.commit()
    with TestClient(create_app(settings, start_worker=False, inference=Inference(url=test_engine_url))) as client:
        yield client


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_each_file_is_served_with_its_type_to_anyone(page_client):
    assert set(FILES) == {p.name for p in assets.DIRECTORY.iterdir()}
    for name, kind in FILES.items():
        response = page_client.get("/" + assets.url(name))  # no login: the files hold nobody's data
        assert response.status_code == 200, name
        assert kind in response.headers["content-type"], name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (assets.DIRECTORY / name).read_bytes()
    assert page_client.get(f"{assets.MOUNT_PATH}/nothing.js").status_code == 404


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_the_page_head_links_the_files_and_hands_the_scripts_their_settings(page_client):
    page_client.post("/login", data={"username": "rita", "password": PASSWORD})
    config = page_client.get("/config").json()
    head = "".join(c.get("props", {}).get("head") or "" for c in config["components"])
    assert f'<link rel="stylesheet" href="{assets.url("rlhf.css")}">' in head
    for script in ("rate.js", "arena.js"):
        assert f'<script src="{assets.url(script)}"></script>' in head
    # The settings come before the script that reads them, and name the buttons the page has.
    assert head.index("<script>window.RLHF = ") < head.index(assets.url("rate.js"))
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"vote-a", "vote-b", "vote-tie", "vote-bad", "arena-vote-a", "arena-vote-bad"} <= ids
    for elem_id in ("vote-a", "arena-vote-bad", "rl-typing-guard", "rl-submit-choice"):
        assert f'"{elem_id}"' in head


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_gradio_keeps_its_own_static_files_which_the_stylesheet_borrows(page_client):
    font = re.search(r'url\("([^"]+\.woff2)"\)', (assets.DIRECTORY / "rlhf.css").read_text()).group(1)
    response = page_client.get(urljoin("/" + assets.url("rlhf.css"), font))
    assert response.status_code == 200 and response.content[:4] == b"wOF2"


def test_a_changed_file_gets_a_new_url(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "DIRECTORY", tmp_path)
    (tmp_path / "rate.js").write_text("one();")
    first = assets.url("rate.js")
    assert first.startswith("rlhf-static/rate.js?v=") and assets.url("rate.js") == first
    (tmp_path / "rate.js").write_text("two();")
    assert assets.url("rate.js") != first
