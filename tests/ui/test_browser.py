"""``memos ui`` in a real browser (Debian's chromium, headless, driven by Playwright): search
from the page, a memory's timeline, the access decision shown for bob, bob's view never
holding ann's private text, an XSS payload shown as text, the audit filter, charts drawn."""

from __future__ import annotations

import os
import re
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from tests.ui.conftest import SECRET, SHARED, Server, World

SHOTS = os.environ.get("MEMOS_UI_SCREENSHOTS")  # a folder: keep the pages' screenshots


def shot(page: Any, name: str, tmp_path: Path) -> None:
    """Screenshot the page, to MEMOS_UI_SCREENSHOTS when set (the docs' images)."""
    where = Path(SHOTS) if SHOTS else tmp_path
    where.mkdir(parents=True, exist_ok=True)
    out = where / f"ui-{name}.png"
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000


def test_search_from_the_page(as_bob: Server, page: Any, tmp_path: Path) -> None:
    page.goto(as_bob.url + "/")
    page.fill("input[name=q]", "quarterly review")
    page.click("button[type=submit]")
    page.wait_for_selector("#results")
    assert "/search?q=quarterly+review" in page.url
    rows = page.locator("#results tr.result")
    assert rows.count() >= 1
    assert SHARED in rows.first.inner_text()
    assert "found by" in page.inner_text("#results thead")
    assert re.search(r"vector #\d", page.inner_text("#results"))
    assert "hidden by access control" in page.inner_text("main")  # ann's, counted
    assert "Viewing as bob" in page.inner_text("#viewer")
    twin = page.get_attribute("#json-twin", "href")
    assert twin is not None and twin.startswith("/search.json?q=quarterly+review")
    assert page.problems == []
    shot(page, "search", tmp_path)


def test_timeline_shows_the_supersession(as_ann: Server, world: World, page: Any,
                                          tmp_path: Path) -> None:
    page.goto(f"{as_ann.url}/memory/{world.ids['porto']}")
    steps = page.locator("ol.timeline li")
    assert steps.count() == 2
    assert "Lisbon" in steps.nth(0).inner_text() and "Porto" in steps.nth(1).inner_text()
    assert "ended" in (steps.nth(0).get_attribute("class") or "")
    assert "2026-01-10 → 2026-02-05" in steps.nth(0).inner_text()
    assert "supersedes" in steps.nth(1).inner_text()  # with the decision's rule
    assert page.inner_text("#signer") == "remember"  # written by memos remember, unsigned
    page.wait_for_selector("[data-chart=usage][data-drawn='1'] canvas")
    assert page.problems == []
    shot(page, "memory", tmp_path)
    page.click("ol.timeline li >> nth=0 >> a")
    assert "superseded" in page.inner_text("h1")


def test_access_decision_for_bob(as_bob: Server, world: World, page: Any) -> None:
    page.goto(f"{as_bob.url}/memory/{world.ids['shared']}")
    access = page.inner_text("#access")
    assert "Access for bob" in access and "allowed" in access and "bob" in access
    assert "denied" in access  # he may read it, not change it
    r = page.goto(f"{as_bob.url}/memory/{world.ids['salary']}")
    assert r is not None and r.status == 403
    assert "not readable by bob" in page.inner_text("#error")
    assert SECRET not in page.content()


def test_bobs_view_never_holds_anns_private_text(as_bob: Server, world: World,
                                                 page: Any) -> None:
    """Every page reachable from bob's start page and from searches that aim at the secret,
    in the DOM and as JSON (``.json`` and ``Accept``)."""
    start = ["/", "/search?q=salary", "/search?q=salary&history=1",
             "/search?q=offsite&history=1", "/search?q=euros&as_of=2030-01-01",
             f"/memory/{world.ids['salary']}", f"/memory/{world.ids['lisbon']}",
             f"/vault/audit?memory={world.ids['salary'][:8]}", "/vault/audit?user=ann"]
    seen: set[str] = set()
    todo = deque(start)
    host = urlparse(as_bob.url).netloc
    while todo and len(seen) < 120:
        path = todo.popleft()
        if path in seen:
            continue
        seen.add(path)
        page.goto(as_bob.url + path)
        html, text = page.content(), page.inner_text("body")
        assert SECRET not in html and SECRET not in text, path
        assert "91,000" not in text, path
        base, _, query = path.partition("?")
        for twin in (as_bob.get(base + ".json" + ("?" + query if query else "")),
                     as_bob.get(path, headers={"Accept": "application/json"})):
            assert twin.headers["content-type"].startswith("application/json")
            assert SECRET not in twin.text and "91,000" not in twin.text, path
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            u = urlparse(urljoin(as_bob.url + path, href))
            if u.netloc == host and not u.path.startswith("/static") and \
                    not u.path.endswith(".json") and not u.path.startswith("/schedule"):
                todo.append(u.path + (f"?{u.query}" if u.query else ""))
    assert len(seen) >= 15
    assert page.problems == [] or all("403" in p or "404" in p for p in page.problems)


def test_xss_payload_is_text(as_ann: Server, world: World, page: Any) -> None:
    page.goto(f"{as_ann.url}/memory/{world.ids['salary']}")
    text = page.inner_text("#memory-text")
    assert "<script>window.__pwned=1</script>" in text and "onerror" in text
    assert "[bold red]x[/bold red]" in text
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img").count() == 0
    assert page.locator("main script:not([type='application/json'])").count() == 0
    page.goto(f"{as_ann.url}/search?q=salary+euros")
    assert "<script>window.__pwned=1</script>" in page.inner_text("#results")
    page.goto(f"{as_ann.url}/vault/audit")  # the query text is shown in ann's own records
    assert page.evaluate("window.__pwned") is None
    assert page.problems == []


def test_audit_filter(as_ann: Server, page: Any, tmp_path: Path) -> None:
    page.goto(f"{as_ann.url}/vault/audit")
    everything = page.locator("#audit tr.record").count()
    page.fill("#audit-filter input[name=user]", "ann")
    page.fill("#audit-filter input[name=op]", "search")
    page.click("#audit-filter button")
    page.wait_for_url(re.compile(r"user=ann&op=search"))
    rows = page.locator("#audit tr.record")
    assert 0 < rows.count() < everything
    for i in range(rows.count()):
        assert rows.nth(i).locator("td.user").inner_text() == "ann"
        assert rows.nth(i).locator("td.op").inner_text() == "search"
    assert "offsite" in page.inner_text("#audit")  # ann's own queries are hers to see
    shot(page, "audit", tmp_path)
    page.goto(f"{as_ann.url}/vault/audit?user=bob")
    bob = page.inner_text("#audit")
    assert "quarterly" not in bob  # bob's query text is his
    assert page.problems == []


def test_vault_page_and_a_past_version(as_ann: Server, page: Any, tmp_path: Path) -> None:
    page.goto(f"{as_ann.url}/vault")
    assert page.locator("#cubes tbody tr").count() == 2  # ann's remembered and the team cube
    assert "team" in page.inner_text("#cubes")
    shot(page, "vault", tmp_path)
    versions = page.locator("#versions tbody tr")
    first = versions.nth(versions.count() - 1).locator("a").first
    first.click()
    assert "vault as of version" in page.inner_text("#viewer")
    assert page.locator("#cubes tbody tr").count() <= 1


def test_schedule_plan_and_budget_chart(as_bob: Server, page: Any, tmp_path: Path) -> None:
    page.goto(f"{as_bob.url}/schedule?budget=2MiB", timeout=180_000)
    assert "nothing is written" in page.inner_text("main")
    decisions = page.locator("#plan tbody tr")
    assert decisions.count() >= 1
    assert "Bob's desk" in page.inner_text("#plan") or SHARED in page.inner_text("#plan")
    assert SECRET not in page.content()
    assert "MB used" not in page.inner_text("#plan")  # bytes of others' chunks are theirs
    page.wait_for_selector("[data-chart=budget][data-drawn='1'] canvas")
    assert "decisions about memories you may not read are hidden" in page.inner_text("main")
    assert page.problems == []
    shot(page, "schedule", tmp_path)
