"""The operator console at /console, in a real headless browser: Debian's chromium, driven
through chromedriver by Selenium, against the running service.

Two tenants' data; the console signed in with one tenant's key shows that tenant's keys,
namespaces, memories (recall with score parts and channels), graph and session timeline,
and nothing of the other tenant's; an operator's key (admin, every namespace) sees the live
traffic figures. Markup stored in any field the console shows stays text. The page
loads nothing but its own files from the service. Screenshots of each view go to
$ENGRAM_SCREENSHOTS_DIR (`make screenshots` sets docs/console, which docs/console.md shows),
else to the test's temporary folder.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from serve.routes.console import CONSOLE_DIR
from tests.builders import Engram

WAIT_S = 60
# Stored in every field the console shows: it must come out as text, never as elements.
MARKUP = '<img src=x onerror="window.__xss=1"><b class="injected">bold</b><script>window.__xss=2</script>'
BROWSER_HINT = "the console tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver (make test installs them as root)"


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert chromium and driver, BROWSER_HINT
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    chromium, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for failures
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--no-first-run", "--no-default-browser-check",
                 # Nothing of the browser's own calls home: the page's requests are all there is.
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # An explicit chromedriver: Selenium Manager would otherwise look for one to download.
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_page_load_timeout(WAIT_S)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("ENGRAM_SCREENSHOTS_DIR")
    folder = Path(where) if where else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Tenants:
    """Two tenants: ours, `acme-support-<tag>` (a session of linked memories; the
    screenshots show it) and `acme-support-<tag>-marked` (markup in every field the console
    shows: content, tags, session metadata and summary, the key's name), and theirs."""

    def __init__(self, engram: Engram) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ours = f"acme-support-{tag}"
        self.marked = f"acme-support-{tag}-marked"
        self.theirs = f"globex-{tag}"
        self.secret = f"globex vault combination {tag} is 31-41-59"
        with engram.http() as c:
            self.session_id, self.ids = self._session(c, self.ours, {"channel": "chat"}, (
                ("Alice Moreau reported that invoices from Berlin arrive twice", 0.8),
                ("Alice Moreau asked for a refund of invoice 4521", 0.6),
                ("The Berlin warehouse switched to the new billing system in March", 0.7),
                ("Refund for invoice 4521 approved by Bob Chen", 0.9)),
                ["billing"], "double invoices explained; refund approved")
            self.marked_session, self.marked_ids = self._session(c, self.marked, {"channel": MARKUP}, (
                (f"Carla Diaz moved to Lisbon {MARKUP}", 0.5),
                ("Carla Diaz asked about Lisbon invoices", 0.5)), ["vip", MARKUP], f"moved {MARKUP}")
            c.post("/v1/memory/store", json={"agent_id": self.theirs, "content": self.secret}).raise_for_status()
        self.reader = engram.create_key("read", [self.ours], name=f"acme reader {tag}")
        self.marked_reader = engram.create_key("read", [self.marked], name=f"marked {MARKUP}")
        self.admin = engram.create_key("admin", [f"acme-support-{tag}*"], name=f"acme admin {tag}")
        self.operator = engram.create_key("admin", None, name=f"operator {tag}")

    @staticmethod
    def _session(c: httpx.Client, namespace: str, metadata: dict[str, str],
                 memories: tuple[tuple[str, float], ...], tags: list[str], summary: str) -> tuple[str, list[str]]:
        sid = c.post("/v1/sessions/start", json={"agent_id": namespace, "metadata": metadata}).json()["session"]["id"]
        ids = []
        for i, (text, importance) in enumerate(memories):
            r = c.post("/v1/memory/store", json={"agent_id": namespace, "content": text, "session_id": sid,
                                                 "importance": importance, "tags": tags})
            r.raise_for_status()
            ids.append(r.json()["memory"]["id"])
            if i < len(memories) - 1:
                time.sleep(1.05)  # distinct seconds: the timeline's order shows
        c.post(f"/v1/sessions/{sid}/end", json={"summary": summary}).raise_for_status()
        return sid, ids


@pytest.fixture(scope="module")
def tenants(engram: Engram) -> Tenants:
    return Tenants(engram)


def until(browser: WebDriver, find: Any, what: str) -> Any:
    """What `find` answers once it is truthy. The views redraw themselves (the traffic view
    every two seconds): an element found just before a redraw is stale, so look again."""
    waiting = WebDriverWait(browser, WAIT_S, poll_frequency=0.2,
                            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException, IndexError))
    try:
        return waiting.until(lambda b: find(b))
    except TimeoutException:
        logs = [entry["message"] for entry in browser.get_log("browser")][-20:]
        raise AssertionError(f"waited {WAIT_S} s for {what}; page text: "
                             f"{browser.find_element(By.TAG_NAME, 'body').text[:1500]}\nbrowser console: {logs}") from None


def css(browser: WebDriver, selector: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, selector)


def sign_in(browser: WebDriver, engram: Engram, key: str) -> None:
    browser.get(f"{engram.url}/console")  # a reload signs out: the key lives in the page only
    field = until(browser, lambda b: b.find_element(By.ID, "api-key"), "the sign-in form")
    assert not browser.find_element(By.ID, "tabs").is_displayed()  # nothing but the form before a key
    field.clear()
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
    until(browser, lambda b: b.find_element(By.ID, "tabs").is_displayed(), "the signed-in console")
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == ""
    assert browser.execute_script("return sessionStorage.length + localStorage.length + document.cookie.length") == 0


def tab(browser: WebDriver, view: str) -> WebElement:
    browser.find_element(By.CSS_SELECTOR, f'#tabs a[data-view="{view}"]').click()
    section = until(browser, lambda b: (lambda s: s if s.is_displayed() and "Loading…" not in s.text else None)(
        b.find_element(By.ID, f"view-{view}")), f"the {view} view")
    text = browser.execute_script("return arguments[0].textContent", section)
    assert not re.search(r"\b(null|undefined|NaN)\b", text), f"the {view} view shows a missing value: {text[:800]}"
    no_markup_from_data(browser)
    return section


def no_markup_from_data(browser: WebDriver) -> None:
    """Stored markup stays text: no element of it on the page, none of its script run."""
    made = browser.execute_script(
        "return document.querySelectorAll('img, b.injected, script:not([src])').length")
    assert made == 0 and browser.execute_script("return window.__xss === undefined")


def shot(browser: WebDriver, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 5_000, f"{path}: an empty screenshot"


def only_own_resources(browser: WebDriver, engram: Engram) -> None:
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded, "the page loaded no resources at all"
    strangers = [u for u in loaded if not u.startswith(engram.url + "/")]
    assert not strangers, f"the console fetched from elsewhere: {strangers}"


# -- served as it should be --------------------------------------------------------------

def test_console_is_served_whole_from_the_service(engram: Engram) -> None:
    with httpx.Client(base_url=engram.url, timeout=30) as c:
        page = c.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
        referenced = set(re.findall(r'(?:src|href)="(/console/[^"]+)"', page.text))
        for script in CONSOLE_DIR.glob("*.js"):
            referenced |= {f"/console/{name}" for name in re.findall(r'from "\./([^"]+)"', script.read_text())}
        assert {"/console/console.js", "/console/console.css", "/console/graph.js"} <= referenced
        for path in sorted(referenced):
            asset = c.get(path)
            assert asset.status_code == 200, path
            # Nothing from elsewhere: the only URL in any file is the SVG namespace's name.
            urls = set(re.findall(r"https?://[^\s\"'`)]+", asset.text)) - {"http://www.w3.org/2000/svg"}
            assert not urls, f"{path} names {urls}"
        missing = c.get("/console/settings.json")
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
        assert c.get("/console/..%2Fapp.py").status_code == 404
        assert c.get("/console/", follow_redirects=False).status_code == 308
        assert "/console" not in str(c.get("/openapi.json").json()["paths"])


def test_live_figures_are_an_operators(engram: Engram, tenants: Tenants) -> None:
    for key in (tenants.reader, tenants.admin):  # a tenant's admin sees only its tenants
        with engram.http(key) as c:
            refused = c.get("/v1/ops/traffic")
            assert refused.status_code == 403 and refused.json()["code"] == "INSUFFICIENT_SCOPE"
    with engram.http(tenants.operator) as c:
        assert c.get("/v1/ops/traffic", params={"seconds": 5}).status_code == 400
        for _ in range(15):
            c.get("/v1/auth/whoami").raise_for_status()
        deadline = time.time() + WAIT_S
        while True:  # the replicas send each finished second to the board once a second
            t = c.get("/v1/ops/traffic", params={"seconds": 60}).json()
            if t["totals"]["requests"] >= 15 or time.time() > deadline:
                break
            time.sleep(1)
    assert len(t["series"]) == 60 and t["replicas_reporting"] >= 1 and "partial" not in t
    assert t["totals"]["requests"] >= 15 and t["totals"]["p50_ms"] is not None
    assert [p["t"] for p in t["series"]] == list(range(t["now"] - 59, t["now"] + 1))


# -- in the browser ------------------------------------------------------------------------

def test_a_tenant_key_sees_its_own_and_nothing_else(engram: Engram, tenants: Tenants,
                                                    browser: WebDriver, shots: Path) -> None:
    sign_in(browser, engram, tenants.reader)
    names = [o.get_attribute("value") for o in css(browser, "#namespace option")]
    assert names == [tenants.ours], browser.find_element(By.TAG_NAME, "header").text

    view = tab(browser, "namespaces")
    until(browser, lambda b: "Memories" in b.find_element(By.ID, "namespace-stats").text, "the namespace's stats")
    assert tenants.ours in view.text and tenants.theirs not in view.text
    assert re.search(r"Memories\s+4\b", browser.find_element(By.ID, "namespace-stats").text)

    view = tab(browser, "keys")
    assert browser.find_element(By.ID, "this-key-grants").text == tenants.ours
    assert css(browser, ".keys-refused"), view.text  # a read key lists no keys
    shot(browser, shots, "keys-tenant")

    view = tab(browser, "traffic")
    assert css(browser, ".traffic-refused"), view.text

    tab(browser, "memories")
    query = browser.find_element(By.ID, "recall-query")
    query.send_keys("vault combination")
    browser.find_element(By.CSS_SELECTOR, "#recall-form button").click()
    until(browser, lambda b: "recalled for" in b.find_element(By.ID, "memory-results").text, "the recall")
    assert tenants.secret not in browser.page_source and tenants.theirs not in browser.page_source
    only_own_resources(browser, engram)


def test_memory_browser_recalls_with_score_parts_and_channels(engram: Engram, tenants: Tenants,
                                                              browser: WebDriver, shots: Path) -> None:
    sign_in(browser, engram, tenants.admin)
    view = tab(browser, "namespaces")
    assert tenants.ours in view.text and tenants.theirs not in view.text
    shot(browser, shots, "namespaces")
    assert len(css(browser, "#namespaces-table tbody tr")) == 2  # ours and the marked one
    browser.find_element(By.ID, "namespace-filter").send_keys("no-such-tenant")
    until(browser, lambda b: css(b, "#namespaces-table tbody") and not css(b, "#namespaces-table tbody tr"),
          "the filter to hide every namespace")
    browser.find_element(By.ID, "namespace-filter").clear()
    browser.find_element(By.ID, "namespace-filter").send_keys("-marked")
    until(browser, lambda b: [r.text.split()[0] for r in css(b, "#namespaces-table tbody tr")] == [tenants.marked],
          "the filter to show the one that matches")

    view = tab(browser, "keys")
    keys_text = browser.find_element(By.ID, "keys-table").text
    assert "acme reader" in keys_text and tenants.ours in keys_text  # the reader, within reach
    assert "ek_" not in view.text  # secrets are never listed
    shot(browser, shots, "keys")

    tab(browser, "memories")
    query = "Alice invoice refund Berlin"
    browser.find_element(By.ID, "recall-query").send_keys(query)
    browser.find_element(By.CSS_SELECTOR, "#recall-form button").click()
    until(browser, lambda b: "recalled for" in b.find_element(By.ID, "memory-results").text, "the recall")
    with engram.http(tenants.admin) as c:
        answer = c.post("/v1/memory/recall", json={"agent_id": tenants.ours, "query": query, "top_k": 20}).json()
    # Recall counts accesses, which weigh in the blend: the order may move between two
    # recalls, the results and each one's relevance and channels may not.
    by_id = {m["id"]: m for m in answer["memories"]}
    cards = css(browser, "#memory-results article.memory")
    assert {c.get_attribute("data-id") for c in cards} == set(by_id)
    for card in cards:
        expected = by_id[card.get_attribute("data-id")]
        assert [c.text for c in card.find_elements(By.CSS_SELECTOR, ".chip")] == expected["channels"]
        parts = {r.get_attribute("data-part"): r for r in card.find_elements(By.CSS_SELECTOR, ".score-parts tr")}
        assert {"relevance", "importance", "decay", "recency", "access"} <= set(parts)
        relevance = float(parts["relevance"].find_element(By.CSS_SELECTOR, ".value").text)
        assert relevance == pytest.approx(expected["score_breakdown"]["relevance"], abs=1e-3)
        assert re.search(r"score \d", card.text)
    first = cards[0]
    expected = by_id[first.get_attribute("data-id")]
    width = browser.execute_script("return arguments[0].querySelector('.fill').style.width", first)
    assert width.endswith("%") and float(width[:-1]) > 0  # the bars are drawn (CSSOM, not inline)
    shot(browser, shots, "recall")

    # The first result's graph: memories sharing entities (Alice, Berlin, invoice 4521).
    first.find_element(By.CSS_SELECTOR, ".show-graph").click()
    until(browser, lambda b: css(b, "#memory-graph g.node.root"), "the graph")
    nodes = css(browser, "#memory-graph g.node")
    edges = css(browser, "#memory-graph line.edge")
    assert len(nodes) >= 2 and len(edges) >= 1, browser.find_element(By.ID, "view-graph").text
    assert css(browser, "#memory-graph g.node.root")[0].get_attribute("data-id") == expected["id"]
    shot(browser, shots, "graph")
    # Re-centre on a neighbour.
    neighbour = next(n for n in nodes if "root" not in (n.get_attribute("class") or ""))
    neighbour_id = neighbour.get_attribute("data-id")
    neighbour.find_element(By.TAG_NAME, "circle").click()
    until(browser, lambda b: (lambda r: r and r[0].get_attribute("data-id") == neighbour_id)(
        css(b, "#memory-graph g.node.root")), "the graph centred on the neighbour")


def test_session_timeline(engram: Engram, tenants: Tenants, browser: WebDriver, shots: Path) -> None:
    sign_in(browser, engram, tenants.admin)
    tab(browser, "memories")  # the newest memories, listed without a query
    until(browser, lambda b: "newest memories" in b.find_element(By.ID, "memory-results").text, "the listing")
    card = next(c for c in css(browser, "#memory-results article.memory")
                if c.get_attribute("data-id") == tenants.ids[0])
    card.find_element(By.CSS_SELECTOR, ".show-session").click()
    until(browser, lambda b: css(b, "#session-timeline li.memory-item"), "the session's timeline")
    items = css(browser, "#session-timeline li.memory-item")
    assert [i.get_attribute("data-id") for i in items] == tenants.ids  # in the order they happened
    marks = [m.text for m in css(browser, "#session-timeline li.mark")]
    assert "started" in marks[0] and "ended" in marks[-1] and "refund approved" in marks[-1]
    assert tenants.session_id in browser.find_element(By.ID, "view-sessions").text
    shot(browser, shots, "session")
    only_own_resources(browser, engram)


def test_stored_markup_stays_text(engram: Engram, tenants: Tenants, browser: WebDriver) -> None:
    """Markup in a key's name, in memories' content and tags, in a session's metadata and
    summary: on every view that shows it, as text; no element of it made, none of it run
    (`tab` checks each view)."""
    sign_in(browser, engram, tenants.marked_reader)
    assert MARKUP in browser.find_element(By.ID, "key-name").text
    assert MARKUP in tab(browser, "keys").text
    tab(browser, "memories")
    until(browser, lambda b: "newest memories" in b.find_element(By.ID, "memory-results").text, "the listing")
    listing = browser.find_element(By.ID, "memory-results").text
    assert f"Carla Diaz moved to Lisbon {MARKUP}" in listing and f"tags: vip, {MARKUP}" in listing
    browser.find_element(By.ID, "recall-query").send_keys("Carla Lisbon")
    browser.find_element(By.CSS_SELECTOR, "#recall-form button").click()
    until(browser, lambda b: "recalled for" in b.find_element(By.ID, "memory-results").text, "the recall")
    no_markup_from_data(browser)
    card = next(c for c in css(browser, "#memory-results article.memory")
                if c.get_attribute("data-id") == tenants.marked_ids[0])
    card.find_element(By.CSS_SELECTOR, ".show-graph").click()
    until(browser, lambda b: len(css(b, "#memory-graph g.node")) == 2, "the graph of the two memories")
    assert MARKUP in browser.find_element(By.ID, "graph-nodes").text
    no_markup_from_data(browser)
    tab(browser, "sessions")
    browser.find_element(By.CSS_SELECTOR, "#sessions-table tbody tr").click()
    until(browser, lambda b: css(b, "#session-timeline li.memory-item"), "the session's timeline")
    marks = [m.text for m in css(browser, "#session-timeline li.mark")]
    assert "<img src=x onerror=" in marks[0] and f"moved {MARKUP}" in marks[-1]  # the metadata (as JSON), the summary
    no_markup_from_data(browser)


def test_live_traffic_figures(engram: Engram, tenants: Tenants, browser: WebDriver, shots: Path) -> None:
    with engram.http(tenants.operator) as c:  # some traffic to see: recalls, and 37 answers of 404
        for _ in range(30):
            c.post("/v1/memory/recall", json={"agent_id": tenants.ours, "query": "refund", "top_k": 3})
        for i in range(37):
            assert c.get(f"/v1/memory/get/no-such-memory-{i}", params={"agent_id": tenants.ours}).status_code == 404
    sign_in(browser, engram, tenants.operator)
    tab(browser, "traffic")

    def figures(b: WebDriver) -> dict[str, str]:
        # One read in the page (atomic: the view redraws itself every two seconds).
        return b.execute_script("""
            const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent : null; };
            const line = document.querySelector('#chart-requests polyline');
            return {requests: text('#requests-window .value'), p95: text('#p95 .value'),
                    client_errors: text('#client-errors .value'),
                    now: text('#view-traffic .note'), points: line ? line.getAttribute('points') : ''};""")

    def counted(f: dict[str, str]) -> bool:
        return (f["requests"] or "").isdigit() and int(f["requests"]) >= 67 \
            and (f["client_errors"] or "").isdigit() and int(f["client_errors"]) >= 37

    seen = until(browser, lambda b: (lambda f: f if counted(f) else None)(figures(b)),
                 "the recalls and the 404s counted in the live figures")
    assert seen["p95"] not in ("", "—", None)
    assert len(seen["points"].split()) == 120  # a point per second of the window
    until(browser, lambda b: figures(b)["now"] != seen["now"], "the figures refreshed by themselves")
    shot(browser, shots, "traffic")
