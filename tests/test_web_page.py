"""The search page in a real browser (Debian's Chromium driven by Playwright),
checked against the gateway's own JSON answers for the same requests."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import launch
from tests.web_harness import Population, WebWorld, start_world

PAGE = 24  # results per request (app.js)
QUERY = "a red circle"
VECTOR = "SEARCH_MODE_VECTOR"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[WebWorld]:
    tmp = tmp_path_factory.mktemp("web_page")
    yield from start_world(
        tmp,
        [Population("alice", tmp / "alice", 30, seed=7), Population("bob", tmp / "bob", 6, 8)],
    )


@pytest.fixture
def page(browser: Any, world: WebWorld) -> Iterator[Any]:
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the
    # page's CSP forbids (test_page_runs_under_its_csp checks the page itself).
    context = browser.new_context(viewport={"width": 1200, "height": 800}, bypass_csp=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors  # no script error, whatever the test did


def sign_in(page: Any, world: WebWorld, tenant: str, path: str = "/") -> None:
    page.goto(world.url.rstrip("/") + path)
    page.wait_for_selector("#keydlg[open]")
    page.fill("#key", world.keys[tenant])
    page.press("#key", "Enter")
    page.wait_for_selector("#keydlg", state="hidden")
    page.wait_for_selector("#stats:has-text('images')")


def card_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.id)"))


def wait_for_cards(page: Any, expected: list[str]) -> None:
    """Until the grid shows exactly `expected`, in order (fails after 20 s)."""
    assert expected, "a test must expect some results"
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#results .card')]"
        ".map(e => e.dataset.id)) === JSON.stringify(ids)",
        arg=expected,
        timeout=20_000,
    )


def search_text(page: Any, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")


def test_query_filter_page_open_and_more_like_this(page: Any, world: WebWorld) -> None:
    sign_in(page, world, "alice")
    search_text(page, QUERY)
    first = world.search("alice", text=QUERY, k=PAGE, mode=VECTOR, offset=0)
    wait_for_cards(page, first)
    answer = world.call("/v1/search", {"text": QUERY, "k": PAGE}, tenant="alice").json()
    shown = page.eval_on_selector_all(
        "#results .card",
        "els => els.map(e => [e.querySelector('.caption').textContent,"
        " e.querySelector('.score').textContent])",
    )
    assert shown == [[h["caption"], f"{h['score']:.3f}"] for h in answer["hits"]]
    assert page.evaluate("new URL(location.href).searchParams.get('q')") == QUERY

    # Scrolling to the end fetches the next page by itself.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    rest = world.search("alice", text=QUERY, k=PAGE, mode=VECTOR, offset=PAGE)
    assert len(rest) == 30 - PAGE
    wait_for_cards(page, first + rest)
    assert page.is_hidden("#more")  # everything shown: nothing more to ask for

    # A filter: camera of the best hit.
    camera = world.records[first[0]]["camera_id"]
    page.click("#toggle-filters")
    page.fill("#f-camera", camera)
    page.click("#filters button[type=submit]")
    flt = {"must": [{"match": {"key": "camera_id", "keyword": camera}}]}
    filtered = world.search("alice", text=QUERY, k=PAGE, mode=VECTOR, offset=0, filter=flt)
    assert filtered and all(world.records[i]["camera_id"] == camera for i in filtered)
    wait_for_cards(page, filtered)

    # Open a result: the larger image, its caption and all its metadata.
    target = filtered[1] if len(filtered) > 1 else filtered[0]
    page.click(f'#results .card[data-id="{target}"]')
    page.wait_for_selector("#detail[open]")
    page.wait_for_function(
        "document.querySelector('#detail-img').complete && "
        "document.querySelector('#detail-img').naturalWidth > 0"
    )
    meta = dict(
        zip(
            page.eval_on_selector_all("#detail-meta dt", "els => els.map(e => e.textContent)"),
            page.eval_on_selector_all("#detail-meta dd", "els => els.map(e => e.textContent)"),
            strict=True,
        )
    )
    point = world.call(f"/v1/points/{target}", tenant="alice").json()
    assert meta["id"] == target and meta["camera_id"] == camera
    assert meta["caption"] == point["caption"] == page.inner_text("#detail-title")
    assert meta["tags"] == ", ".join(world.records[target]["tags"])
    assert meta["file"] == world.records[target]["file"]

    # More like this: the same answer as Search by point id (filters still apply).
    page.click("#detail-more")
    similar = world.search("alice", pointId=target, k=PAGE, mode=VECTOR, offset=0, filter=flt)
    if similar:
        wait_for_cards(page, similar)
    else:
        page.wait_for_selector("text=No images match")
    assert target not in card_ids(page)
    page.click("#clear-filters")
    unfiltered = world.search("alice", pointId=target, k=PAGE, mode=VECTOR, offset=0)
    wait_for_cards(page, unfiltered)


def test_a_new_search_replaces_one_still_loading(page: Any, world: WebWorld) -> None:
    sign_in(page, world, "alice")
    search_text(page, "a blue square")
    search_text(page, "a green triangle")  # before the first answer is in
    wait_for_cards(page, world.search("alice", text="a green triangle", k=PAGE, mode=VECTOR))
    assert "a green triangle" in page.inner_text("#status")


def test_bad_filter_is_shown_at_its_field(page: Any, world: WebWorld) -> None:
    sign_in(page, world, "alice")
    search_text(page, QUERY)
    page.wait_for_selector("#results .card")
    page.click("#toggle-filters")
    page.fill("#f-tags", "red")
    page.fill("#f-lat", "95")  # beyond the pole: the gateway refuses must[1]
    page.fill("#f-lon", "2.35")
    page.fill("#f-radius", "5")
    page.click("#filters button[type=submit]")
    page.wait_for_selector('[data-field="place"].bad')
    message = page.inner_text('[data-field="place"] .err')
    assert "lat" in message and "must[" not in message
    assert not page.is_visible('[data-field="tags"].bad')
    assert page.is_hidden("#problem")  # shown at the field, not as a page error
    page.fill("#f-lat", "")  # incomplete: caught before asking the gateway
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "document.querySelector('[data-field=place] .err').textContent.includes('latitude')"
    )


def test_search_by_image_file_and_paste(page: Any, world: WebWorld) -> None:
    sign_in(page, world, "alice")
    sample = Path(world.records[world.ids["alice"][4]]["file"])
    encoded = base64.b64encode(sample.read_bytes()).decode()
    expected = world.search("alice", image=encoded, k=PAGE, mode=VECTOR, offset=0)
    page.set_input_files("#file", str(sample))
    wait_for_cards(page, expected[:PAGE])
    assert page.is_visible("#imagechip")
    # Pasting the same picture (as from the clipboard) asks the same question.
    page.click("#imagechip-clear")
    page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
            document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data}));
        }""",
        encoded,
    )
    wait_for_cards(page, expected[:PAGE])


def test_keyboard_walks_and_opens_results(page: Any, world: WebWorld) -> None:
    sign_in(page, world, "alice")
    page.click("body")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(QUERY)
    page.keyboard.press("Enter")
    expected = world.search("alice", text=QUERY, k=PAGE, mode=VECTOR, offset=0)
    wait_for_cards(page, expected)
    page.keyboard.press("ArrowDown")  # from the box into the grid
    focused = "document.activeElement.dataset.id"
    assert page.evaluate(focused) == expected[0]
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == expected[1]
    per_row = page.evaluate(
        "(() => { const c = [...document.querySelectorAll('#results .card')];"
        " return c.filter(e => e.offsetTop === c[0].offsetTop).length; })()"
    )
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == expected[1 + per_row]
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail[open]")
    assert page.evaluate("document.querySelector('#detail').dataset.id") == expected[1 + per_row]
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")


def test_readable_on_a_phone_under_its_csp(browser: Any, world: WebWorld) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    try:
        sign_in(page, world, "alice", path=f"/?q={QUERY.replace(' ', '+')}")
        page.wait_for_selector("#results .card")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        columns = page.evaluate(
            "getComputedStyle(document.querySelector('#results')).gridTemplateColumns.split(' ').length"
        )
        assert columns == 2
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('.caption')).fontSize)"
        )
        assert size >= 13
        assert not violations  # the page itself runs under its CSP (no inline code)
    finally:
        context.close()


def test_a_tenant_never_sees_another_tenants_thumbnail(page: Any, world: WebWorld) -> None:
    sign_in(page, world, "alice")
    search_text(page, "a shape")
    page.wait_for_selector("#results .card")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("document.querySelectorAll('#results .card').length === 30")
    shown = set(card_ids(page))
    assert shown == set(world.ids["alice"])
    page.wait_for_function(
        "[...document.querySelectorAll('#results .card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    bob = world.ids["bob"][0]
    # A guessed URL, with alice's key (as the page sends it) and without any.
    statuses = page.evaluate(
        """async ([id, key]) => {
            const withKey = await fetch(`/v1/thumbnails/${id}`, {headers: {authorization: `Bearer ${key}`}});
            const bare = await fetch(`/v1/thumbnails/${id}`);
            const original = await fetch(`/v1/points/${id}/original`, {headers: {authorization: `Bearer ${key}`}});
            return [withKey.status, bare.status, original.status, (await withKey.blob()).type];
        }""",
        [bob, world.keys["alice"]],
    )
    assert statuses[:3] == [404, 401, 404]
    assert statuses[3].startswith("application/json")  # an error, not a picture
    # Even an <img> pointed at it by hand shows nothing.
    loaded = page.evaluate(
        """(id) => new Promise(done => {
            const img = new Image();
            img.onload = () => done(img.naturalWidth);
            img.onerror = () => done(0);
            img.src = `/v1/thumbnails/${id}`;
        })""",
        bob,
    )
    assert loaded == 0
    # "More like this" on bob's id from alice's page: not found, said plainly.
    assert (
        page.evaluate(
            "([id, key]) => fetch('/v1/search', {method: 'POST', headers: {'content-type': "
            "'application/json', authorization: `Bearer ${key}`}, body: JSON.stringify("
            "{pointId: id, k: 5})}).then(r => r.status)",
            [bob, world.keys["alice"]],
        )
        == 404
    )


def test_wrong_key_is_refused_then_the_right_one_scopes_the_page(
    page: Any, world: WebWorld
) -> None:
    page.goto(world.url)
    page.wait_for_selector("#keydlg[open]")
    page.fill("#key", "wrong-key-0123456789abcdef")
    page.press("#key", "Enter")
    page.wait_for_function(
        "document.querySelector('#key-error').textContent.includes('not accepted')"
    )
    page.fill("#key", world.keys["bob"])
    page.press("#key", "Enter")
    page.wait_for_selector("#keydlg", state="hidden")
    assert page.inner_text("#stats").startswith(f"{len(world.ids['bob'])} images")
    search_text(page, QUERY)
    wait_for_cards(page, world.search("bob", text=QUERY, k=PAGE, mode=VECTOR, offset=0))
    assert set(card_ids(page)) <= set(world.ids["bob"])


def test_unavailable_embedder_is_said_plainly(
    browser: Any, tmp_path: Path, tiny_clip: tuple[Path, Path]
) -> None:
    """The embedder service goes away under a running gateway: the page says
    so in words, and the JSON answer is 503 UNAVAILABLE, no stack trace."""
    from embedder_service.server import start_embedder_server
    from embedder_service.settings import EmbedderSettings
    from tests.threaded_server import ServerThread
    from tests.web_harness import settings_for

    config, checkpoint = tiny_clip

    class Running:
        async def start(self) -> Running:
            from search_gateway.assemble import build_core
            from search_gateway.web.server import start_web_server

            self.embedder = await start_embedder_server(
                EmbedderSettings(
                    model=str(config), pretrained=str(checkpoint), host="127.0.0.1", port=0,
                    metrics_port=-1,
                )
            )  # fmt: skip
            await self.embedder.wait_ready()
            address = f"127.0.0.1:{self.embedder.port}"
            settings = settings_for(tmp_path, embedder_address=address, embedder_timeout_s=20)
            self.core = await build_core(settings, with_captioner=False)
            self.web = await start_web_server(self.core, settings, port=0, host="127.0.0.1")
            return self

        async def stop(self, grace: float) -> None:
            await self.web.stop()
            await self.core.close()

    with ServerThread(Running().start) as thread:
        running = thread.server
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        try:
            url = running.web.url
            page.goto(url)
            page.wait_for_function(
                "document.querySelector('#stats').textContent.includes('images')"
            )
            thread.run(running.embedder.stop(0))
            search_text(page, "a dog")
            page.wait_for_selector("#problem:not([hidden])", timeout=30_000)
            assert page.inner_text("#problem").startswith("The embedder is not reachable")
            assert page.get_attribute("#problem", "data-code") == "UNAVAILABLE"
            assert "Traceback" not in page.content()
            status = page.evaluate(
                "fetch('/v1/search', {method: 'POST', headers: {'content-type': 'application/json'},"
                " body: JSON.stringify({text: 'x', k: 3})}).then(async r => [r.status, await r.json()])"
            )
            assert status[0] == 503 and status[1]["status"] == "UNAVAILABLE"
            assert "Traceback" not in json.dumps(status[1])
            # Keyless on loopback (as `imgsearch ui`): only localhost names are
            # answered, so a rebound foreign DNS name reads nothing.
            for host, expected in [("evil.example", 403), ("localhost", 200)]:
                req = urllib.request.Request(url + "v1/capabilities", headers={"Host": host})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        got = r.status
                except urllib.error.HTTPError as e:
                    got = e.code
                assert got == expected, host
        finally:
            context.close()


def _needs(*fields: str) -> None:
    """Skips until the gateway's proto has these SearchRequest fields (the page
    offers the views only then; see /v1/capabilities)."""
    from imgsearch.v1 import gateway_pb2

    have = {f.name for f in gateway_pb2.SearchRequest.DESCRIPTOR.fields}
    if not set(fields) <= have:
        pytest.skip(f"this tree's SearchRequest has no {', '.join(sorted(set(fields) - have))}")


def _pages(world: WebWorld, tenant: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a search by cursor, as the gateway answers them."""
    answers, token = [], ""
    while True:
        body = {**request, **({"pageToken": token} if token else {})}
        reply = world.call("/v1/search", body, tenant=tenant)
        assert reply.status == 200, reply.body
        answers.append(reply.json())
        token = answers[-1].get("nextPageToken", "")
        if not token:
            return answers


def test_time_order_pages_by_cursor(page: Any, world: WebWorld) -> None:
    _needs("order", "page_token")
    sign_in(page, world, "alice")
    page.select_option("#view", "time-asc")
    search_text(page, QUERY)
    request = {"text": QUERY, "k": PAGE, "mode": VECTOR, "order": "SEARCH_ORDER_TIME_ASC"}
    answers = _pages(world, "alice", request)
    expected = [h["id"] for a in answers for h in a["hits"]]
    assert len(answers) >= 2  # the page must use the cursor to show them all
    wait_for_cards(page, expected[:PAGE])
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    wait_for_cards(page, expected)
    times = [world.records[i]["timestamp"] for i in expected]
    assert times == sorted(times)


def test_best_match_pages_by_cursor(page: Any, world: WebWorld) -> None:
    _needs("order", "page_token")
    sign_in(page, world, "alice")
    search_text(page, QUERY)
    request = {"text": QUERY, "k": PAGE, "mode": VECTOR, "order": "SEARCH_ORDER_RELEVANCE"}
    answers = _pages(world, "alice", request)
    expected = [h["id"] for a in answers for h in a["hits"]]
    wait_for_cards(page, expected[:PAGE])
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    wait_for_cards(page, expected)
    assert sorted(expected) == sorted(world.ids["alice"])


def test_events_one_card_per_group(page: Any, world: WebWorld) -> None:
    _needs("group")
    sign_in(page, world, "alice")
    page.select_option("#view", "group-camera")
    search_text(page, QUERY)
    request = {"text": QUERY, "k": PAGE, "mode": VECTOR, "group": {"by": "camera"}}
    answer = _pages(world, "alice", request)[0]
    expected = [h["id"] for h in answer["hits"]]
    wait_for_cards(page, expected)
    sizes = page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.groupSize)")
    assert sizes == [str(g["size"]) for g in answer["groups"]]
    first = page.inner_text("#results .card .group")
    assert first.startswith(f"{answer['groups'][0]['size']} image")


def test_near_duplicates_folded_one_card_per_cluster(page: Any, world: WebWorld) -> None:
    _needs("group")
    sign_in(page, world, "alice")
    page.select_option("#view", "group-near_duplicate")
    search_text(page, QUERY)
    request = {"text": QUERY, "k": PAGE, "mode": VECTOR, "group": {"by": "near_duplicate"}}
    answer = _pages(world, "alice", request)[0]
    expected = [h["id"] for h in answer["hits"]]
    wait_for_cards(page, expected)
    # Every hit is its cluster's best; the key is the cluster's representative.
    for hit, group in zip(answer["hits"], answer["groups"], strict=True):
        assert hit["payload"]["near_group"] == {"stringValue": group["key"]}
        assert group["hitIds"][0] == hit["id"]
    sizes = page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.groupSize)")
    assert sizes == [str(g["size"]) for g in answer["groups"]]
    label = page.inner_text("#results .card .group")
    assert answer["hits"][0]["uri"].split("/")[-1] in label  # the file, not a uuid


def test_rerank_switch_when_a_scorer_is_configured(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With a scorer (the offline-tiny ITM, in-process) the page offers the
    re-rank switch and shows what the gateway answers for that request."""
    _needs("rerank")
    from offline_models.registry import OFFLINE_MODEL_NAME

    tmp = tmp_path_factory.mktemp("web_rerank")
    worlds = start_world(
        tmp,
        [Population("alice", tmp / "alice", 8, seed=5)],
        settings_extra={"rerank_model": OFFLINE_MODEL_NAME},
    )
    world = next(worlds)
    context = browser.new_context(bypass_csp=True)
    try:
        assert world.call("/v1/capabilities").json()["rerank"] is True
        page = context.new_page()
        sign_in(page, world, "alice")
        assert page.is_visible("#rerank-wrap")
        page.check("#rerank")
        search_text(page, QUERY)
        request = {
            "text": QUERY,
            "k": PAGE,
            "mode": VECTOR,
            "rerank": {"enabled": True, "candidates": 96},
        }
        answer = world.call("/v1/search", request, tenant="alice").json()
        assert answer["reranked"] is True
        wait_for_cards(page, [h["id"] for h in answer["hits"]])
        assert "match" in page.inner_text("#results .card .score")
        assert f"re-ranked by {answer['rerankModel']}" in page.inner_text("#status")
    finally:
        context.close()
        worlds.close()
