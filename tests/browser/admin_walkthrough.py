"""Click through the Plugin admin in a headless browser, as a new operator would.

Not part of the pytest suite: run it by hand, with Playwright installed in a venv of
its own (it needs no Django) and a system Chromium (Playwright's browser download
is not used)::

    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    apt-get install -y chromium

Either let the script start a throw-away server (temporary SQLite database, migrated
and seeded with ``seed_demo``; stopped at the end)::

    /tmp/pw/bin/python tests/browser/admin_walkthrough.py --serve

or point it at a running server whose database was seeded with ``seed_demo``::

    /tmp/pw/bin/python tests/browser/admin_walkthrough.py --base-url http://127.0.0.1:8765

Flows: (1) list, filter and search; (2) call the greeter's ``greet`` hook; (3) refused
plugins (syntax error, no ``plugin`` object, config not an object, limits out of
range) leave nothing saved; (4) add a plugin and switch it with the bulk actions;
(5) the "Call a hook" page with bad arguments, a throwing hook and an endless loop;
(6) a staff user with only view permissions gets no actions and no "Call a hook" page;
(7) deliveries: a plugin whose bound ``noteSaved`` hook throws, a note saved in the
admin, its pending delivery (payload, error, JS stack), *Retry now*, a hook removed so
the retry fails for good, the failed count and links on the plugin pages, *Discard*;
(8) the view-only user lists and reads deliveries but cannot act on them.
It creates that user (``view_plugin`` and ``view_delivery``) through the admin's own user
pages (idempotent). Screenshots go
to ``--shots`` (default ``/tmp/shots``). Exit status 0 only if every check passed;
any HTTP 5xx response seen by the browser is a failure.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"
VIEWER_USER, VIEWER_PASSWORD = "plugin-viewer", "View-only-pl4gins!"

SYNTAX_ERROR_SOURCE = "const plugin = {\n greet(n) { return n +; }\n};"
HOOKED_SOURCE = """const plugin = {
  noteSaved(note, meta) { throw new TypeError('walkthrough cannot index ' + note.title); },
};"""
UNHOOKED_SOURCE = "const plugin = { other() { return 1; } };"
TESTER_SOURCE = """const plugin = {
  echo(...args) { log('echo called'); return args; },
  boom() { throw new TypeError('kaboom'); },
  loop() { while (true) {} },
};"""


class CheckFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Walkthrough:
    browser: Browser
    base_url: str
    shots: Path
    run_id: str
    server_errors: list[str] = field(default_factory=list)
    results: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return f"walkthrough-{self.run_id}"

    # -- helpers -------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def new_page(self) -> Page:
        page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(15_000)

        def on_response(response: Response) -> None:
            if response.status >= 500:
                self.server_errors.append(f"{response.status} {response.request.method} {response.url}")

        page.on("response", on_response)
        return page

    def shot(self, page: Page, name: str) -> None:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"    screenshot {path}")

    def login(self, page: Page, username: str, password: str) -> None:
        page.context.clear_cookies()
        page.goto(self.url("/admin/login/?next=/admin/"))
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_load_state()
        check(page.url.rstrip("/").endswith("/admin"), f"login as {username!r} failed: at {page.url}")

    def submit(self, page: Page, selector: str) -> Response | None:
        with page.expect_navigation() as navigation:
            page.click(selector)
        return navigation.value

    def messages(self, page: Page) -> list[str]:
        return [li.inner_text() for li in page.query_selector_all("ul.messagelist li")]

    def field_errors(self, page: Page, name: str) -> str:
        return " ".join(e.inner_text() for e in page.query_selector_all(f".field-{name} .errorlist"))

    def changelist_rows(self, page: Page, query: str) -> int:
        page.goto(self.url(f"/admin/plugins_app/plugin/?q={query}"))
        return len(page.query_selector_all("#result_list tbody tr"))

    def fill(self, page: Page, field_name: str, value: str) -> None:
        """Fill a form field; source, config and schema through their code editor (CodeMirror),
        which hides the textarea it keeps in sync."""
        selector = f"#id_{field_name}"
        if page.locator(f"{selector}[data-code-editor]").count():
            page.wait_for_selector(f"{selector}[data-code-editor-ready]", state="attached")
            page.evaluate("([s, v]) => window.PluginsAppEditor.get(s).setValue(v)", [selector, value])
        else:
            page.fill(selector, value)

    def fill_plugin(self, page: Page, name: str, slug: str, source: str, **values: str) -> None:
        page.goto(self.url("/admin/plugins_app/plugin/add/"))
        page.fill("#id_name", name)
        page.press("#id_name", "Tab")  # let the slug prepopulation run before we overwrite it
        page.fill("#id_slug", slug)
        self.fill(page, "source", source)
        for field_name, value in values.items():
            self.fill(page, field_name, value)

    def call_hook(self, page: Page, try_url: str, hook: str, args: str) -> Response | None:
        page.goto(try_url)
        page.select_option("#id_hook", hook)
        self.fill(page, "args", args)
        return self.submit(page, "#content-main form input[type=submit]")

    def open_try_page(self, page: Page, slug: str) -> str:
        page.goto(self.url(f"/admin/plugins_app/plugin/?q={slug}"))
        page.click(f"#result_list a:text-is('{slug}')")
        page.click("a:has-text('Call a hook')")
        page.wait_for_load_state()
        check(page.url.endswith("/try/"), f"'Call a hook…' led to {page.url}")
        return page.url

    # -- flows -----------------------------------------------------------------------------
    def flow_list(self, page: Page) -> None:
        self.login(page, ADMIN_USER, ADMIN_PASSWORD)
        page.click("#content-main .model-plugin th a")  # "Plugins" on the admin index
        page.wait_for_load_state()
        headers = [h.inner_text().strip().lower() for h in page.query_selector_all("#result_list thead th")]
        for column in ("name", "slug", "enabled", "hooks", "version", "limits", "updated"):
            check(column in headers, f"column {column!r} missing from {headers}")
        self.shot(page, "01_list")
        page.click("#changelist-filter a:text-is('Yes')")
        page.wait_for_load_state()
        check("enabled__exact=1" in page.url, f"filter did not apply: {page.url}")
        icons = page.query_selector_all("#result_list td.field-enabled img")
        check(all(i.get_attribute("alt") == "True" for i in icons), "filter 'Yes' shows disabled plugins")
        self.shot(page, "01_filter_enabled")
        page.goto(self.url("/admin/plugins_app/plugin/"))
        page.fill("#searchbar", "greet")
        self.submit(page, "#changelist-search input[type=submit]")
        check(page.locator("#result_list a:text-is('greeter')").count() == 1, "search 'greet' misses greeter")
        self.shot(page, "01_search")
        check(self.changelist_rows(page, "no-such-plugin-xyz") == 0, "search for nonsense found rows")

    def flow_greet(self, page: Page) -> None:
        try_url = self.open_try_page(page, "greeter")
        self.shot(page, "02_try_page")
        self.call_hook(page, try_url, "greet", '["World"]')
        expect(page.locator("#plugin-result")).to_contain_text("Hello, World! App version: 1.0.0")
        expect(page.locator("#plugin-log")).to_contain_text("Greeting World")
        self.shot(page, "02_greet_result")

    def flow_refused_plugins(self, page: Page) -> None:
        cases: list[tuple[str, dict[str, str], str, str]] = [
            ("syntax", {"source": SYNTAX_ERROR_SOURCE}, "source", r"SyntaxError.*line 2, column \d+"),
            ("no_plugin", {"source": "function greet(n) { return n; }"}, "source", r"`plugin` object"),
            ("config_list", {"config": "[1,2]"}, "config", r"JSON object"),
            ("config_string", {"config": '"x"'}, "config", r"JSON object"),
            ("config_syntax", {"config": "{oops"}, "config", r"Not valid JSON.*line 1, column 2"),
            ("memory_0", {"memory_limit_mb": "0"}, "memory_limit_mb", r"between \d+ and \d+ MiB"),
            ("memory_100000", {"memory_limit_mb": "100000"}, "memory_limit_mb", r"between \d+ and \d+ MiB"),
            ("time_0", {"timeout_ms": "0"}, "timeout_ms", r"between \d+ and \d+ ms"),
            ("time_100000", {"timeout_ms": "100000"}, "timeout_ms", r"between \d+ and \d+ ms"),
        ]
        for label, values, field_name, pattern in cases:
            slug = f"{self.slug}-bad-{label.replace('_', '-')}"
            source = values.pop("source", "const plugin = { ok() { return 1; } };")
            self.fill_plugin(page, f"Bad {label}", slug, source, **values)
            response = self.submit(page, "input[name=_save]")
            check(response is not None and response.status == 200, f"{label}: status {response and response.status}")
            check(page.url.endswith("/add/"), f"{label}: left the add form ({page.url})")
            errors = self.field_errors(page, field_name)
            check(re.search(pattern, errors) is not None, f"{label}: {field_name} error {errors!r} !~ {pattern!r}")
            print(f"    {label}: {errors}")
            self.shot(page, f"03_refused_{label}")
            check(self.changelist_rows(page, slug) == 0, f"{label}: a plugin was saved anyway")

    def flow_add_and_bulk(self, page: Page) -> None:
        self.fill_plugin(page, f"Walkthrough {self.run_id}", self.slug, TESTER_SOURCE, timeout_ms="200")
        self.submit(page, "input[name=_continue]")
        check("/change/" in page.url, f"valid plugin was not saved: {page.url} {self.messages(page)}")
        check(any("echo, boom, loop" in m for m in self.messages(page)), f"no hooks message: {self.messages(page)}")
        self.shot(page, "04_added")
        for action, verb, alt in (("enable_plugins", "Enabled", "True"), ("disable_plugins", "Disabled", "False")):
            page.goto(self.url(f"/admin/plugins_app/plugin/?q={self.slug}"))
            page.check(f"#result_list tr:has(a:text-is('{self.slug}')) input.action-select")
            page.select_option("select[name=action]", action)
            self.submit(page, "button[name=index]")
            check(
                any(m.startswith(f"{verb} 1 plugin") for m in self.messages(page)), f"{action}: {self.messages(page)}"
            )
            icon = page.locator(f"#result_list tr:has(a:text-is('{self.slug}')) td.field-enabled img")
            check(icon.get_attribute("alt") == alt, f"{action}: enabled icon is {icon.get_attribute('alt')}")
            self.shot(page, f"04_{action}")

    def flow_try_errors(self, page: Page) -> None:
        try_url = self.open_try_page(page, self.slug)
        cases = [
            ("bad_json", "echo", "[1,", "#content-main .errorlist", "Not valid JSON"),
            ("not_array", "echo", '{"a": 1}', "#content-main .errorlist", "JSON array"),
            ("throws", "boom", "[]", "#plugin-error", "kaboom"),
            ("endless_loop", "loop", "[]", "#plugin-error", "time limit"),
        ]
        for label, hook, args, selector, text in cases:
            response = self.call_hook(page, try_url, hook, args)
            check(response is not None and response.status == 200, f"{label}: status {response and response.status}")
            expect(page.locator(selector)).to_contain_text(text)
            self.shot(page, f"05_try_{label}")
        self.call_hook(page, try_url, "echo", "")
        expect(page.locator("#plugin-result")).to_contain_text("[]")
        for bad_id in ("not-a-number", "999999999"):
            response = page.goto(self.url(f"/admin/plugins_app/plugin/{bad_id}/try/"))
            check(
                response is not None and response.status == 404,
                f"try page of {bad_id!r}: {response and response.status}",
            )

    def flow_view_only(self, page: Page) -> None:
        self.ensure_viewer(page)
        try_url = self.url(f"/admin/plugins_app/plugin/{self.plugin_pk(page)}/try/")
        self.login(page, VIEWER_USER, VIEWER_PASSWORD)
        page.goto(self.url(f"/admin/plugins_app/plugin/?q={self.slug}"))
        self.shot(page, "06_viewer_list")
        check(page.locator("select[name=action]").count() == 0, "view-only user is offered bulk actions")
        check(page.locator("input.action-select").count() == 0, "view-only user gets row checkboxes")
        page.click(f"#result_list a:text-is('{self.slug}')")
        page.wait_for_load_state()
        check(page.locator("a:has-text('Call a hook')").count() == 0, "view-only user sees 'Call a hook…'")
        self.shot(page, "06_viewer_plugin")
        response = page.goto(try_url)
        check(response is not None and response.status == 403, f"try page GET gave {response and response.status}")
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        headers = {"Referer": self.url("/admin/")}
        posted = page.request.post(
            try_url, form={"csrfmiddlewaretoken": token, "hook": "echo", "args": "[]"}, headers=headers
        )
        check(posted.status == 403, f"try page POST gave {posted.status}")
        changelist = self.url("/admin/plugins_app/plugin/")
        pk = try_url.rstrip("/").split("/")[-2]
        form = {"csrfmiddlewaretoken": token, "action": "enable_plugins", "_selected_action": pk, "index": "0"}
        page.request.post(changelist, form=form, headers=headers)
        page.goto(self.url(f"/admin/plugins_app/plugin/?q={self.slug}"))
        icon = page.locator(f"#result_list tr:has(a:text-is('{self.slug}')) td.field-enabled img")
        check(icon.get_attribute("alt") == "False", "view-only user enabled a plugin by posting the action")

    @property
    def hooked_slug(self) -> str:
        return f"{self.slug}-hooked"

    def delivery_action(self, page: Page, action: str) -> list[str]:
        """Select every row on the (filtered) delivery list, run ``action``, return the messages."""
        page.check("#action-toggle")
        page.select_option("select[name=action]", action)
        self.submit(page, "button[name=index]")
        return self.messages(page)

    def flow_deliveries(self, page: Page) -> None:
        self.login(page, ADMIN_USER, ADMIN_PASSWORD)
        self.fill_plugin(page, f"Hooked {self.run_id}", self.hooked_slug, HOOKED_SOURCE)
        page.check("#id_enabled")
        self.submit(page, "input[name=_continue]")
        check("/change/" in page.url, f"hooked plugin was not saved: {self.messages(page)}")
        plugin_url = page.url
        title = f"Walkthrough note {self.run_id}"
        page.goto(self.url("/admin/demo/note/add/"))
        page.select_option("#id_author", index=1)
        page.fill("#id_title", title)
        self.submit(page, "input[name=_save]")
        check(any("was added successfully" in m for m in self.messages(page)), f"note not saved: {self.messages(page)}")

        page.goto(plugin_url)
        link = page.locator("#plugin-deliveries-link")
        expect(link).to_have_text("Deliveries (0 failed)")
        self.shot(page, "07_plugin_deliveries_link")
        link.click()
        page.wait_for_load_state()
        check("plugin__id__exact=" in page.url, f"link led to {page.url}")
        rows = page.locator("#result_list tbody tr")
        check(rows.count() == 1, f"{rows.count()} deliveries for the hooked plugin")
        expect(rows.first.locator(".delivery-state")).to_have_text("pending")
        expect(rows.first.locator("td.field-short_error")).to_contain_text("walkthrough cannot index")
        self.shot(page, "07_deliveries_list")
        list_url = page.url

        rows.first.locator("th a").click()
        page.wait_for_load_state()
        check(page.locator("input[name=_save]").count() == 0, "the delivery page has a save button")
        expect(page.locator(".field-payload pre")).to_contain_text(title)
        expect(page.locator(".field-last_error_text pre")).to_contain_text("TypeError: walkthrough cannot index")
        expect(page.locator(".field-last_error_stack_text pre")).to_contain_text("at Object.noteSaved")
        self.shot(page, "07_delivery_detail")

        page.goto(list_url)
        text = self.delivery_action(page, "retry_now")
        check(text == ["Retried 1 delivery: delivered 0, retrying 1, failed 0."], f"retry now said {text}")
        self.shot(page, "07_retry_now_retrying")

        page.goto(plugin_url)  # the plugin loses the hook: the next attempt fails for good
        self.fill(page, "source", UNHOOKED_SOURCE)
        self.submit(page, "input[name=_continue]")
        page.goto(list_url)
        text = self.delivery_action(page, "retry_now")
        check(text == ["Retried 1 delivery: delivered 0, retrying 0, failed 1."], f"retry now said {text}")
        expect(page.locator("#result_list tbody tr .delivery-state")).to_have_text("failed")
        self.shot(page, "07_retry_now_failed")

        page.goto(self.url(f"/admin/plugins_app/plugin/?q={self.hooked_slug}"))
        count = page.locator("#result_list a.delivery-failed-count")
        expect(count).to_have_text("1")
        self.shot(page, "07_plugin_list_failed_count")
        count.click()
        page.wait_for_load_state()
        check("state__exact=failed" in page.url, f"count led to {page.url}")
        check(page.locator("#result_list tbody tr").count() == 1, "failed filter shows other rows")
        page.goto(plugin_url)
        expect(page.locator("#plugin-deliveries-link")).to_have_text("Deliveries (1 failed)")

        page.goto(list_url)
        text = self.delivery_action(page, "discard")
        check(text == ["Discarded 1 delivery."], f"discard said {text}")
        expect(page.locator("#result_list tbody tr .delivery-state")).to_have_text("discarded")
        self.shot(page, "07_discarded")

        page.goto(self.url(f"/admin/plugins_app/delivery/?q={self.hooked_slug}&state__exact=discarded"))
        check(page.locator("#result_list tbody tr").count() == 1, "search by plugin slug + state filter")
        page.goto(self.url("/admin/plugins_app/delivery/add/"))
        check(page.locator("#content-main form").count() == 0, "an add form for deliveries exists")

    def flow_deliveries_view_only(self, page: Page) -> None:
        self.ensure_viewer(page)
        self.login(page, VIEWER_USER, VIEWER_PASSWORD)
        list_url = self.url(f"/admin/plugins_app/delivery/?q={self.hooked_slug}")
        page.goto(list_url)
        rows = page.locator("#result_list tbody tr")
        check(rows.count() == 1, f"viewer sees {rows.count()} deliveries of the hooked plugin")
        check(page.locator("select[name=action]").count() == 0, "view-only user is offered delivery actions")
        check(page.locator("input.action-select").count() == 0, "view-only user gets delivery checkboxes")
        self.shot(page, "08_viewer_deliveries")
        href = rows.first.locator("th a").get_attribute("href") or ""
        pk = href.rstrip("/").split("/")[-2]
        rows.first.locator("th a").click()
        page.wait_for_load_state()
        check(page.locator("input[name=_save]").count() == 0, "the viewer gets a save button")
        expect(page.locator(".field-last_error_text pre")).to_contain_text("HookNotFound")  # from flow 7
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        headers = {"Referer": self.url("/admin/")}
        form = {"csrfmiddlewaretoken": token, "action": "retry_now", "_selected_action": pk, "index": "0"}
        page.request.post(self.url("/admin/plugins_app/delivery/"), form=form, headers=headers)
        page.goto(list_url)
        expect(page.locator("#result_list tbody tr .delivery-state")).to_have_text("discarded")

    def plugin_pk(self, page: Page) -> str:
        page.goto(self.url(f"/admin/plugins_app/plugin/?q={self.slug}"))
        href = page.get_attribute(f"#result_list a:text-is('{self.slug}')", "href") or ""
        match = re.search(r"/plugin/(\d+)/change/", href)
        check(match is not None, f"no change link for {self.slug}: {href!r}")
        assert match is not None
        return match.group(1)

    def ensure_viewer(self, page: Page) -> None:
        """As the superuser, create (or reset) a staff user whose only permission is view_plugin."""
        self.login(page, ADMIN_USER, ADMIN_PASSWORD)
        page.goto(self.url(f"/admin/auth/user/?q={VIEWER_USER}"))
        existing = page.locator(f"#result_list a:text-is('{VIEWER_USER}')")
        if existing.count():
            existing.click()
            page.wait_for_load_state()
        else:
            page.goto(self.url("/admin/auth/user/add/"))
            page.fill("#id_username", VIEWER_USER)
            page.fill("#id_password1", VIEWER_PASSWORD)
            page.fill("#id_password2", VIEWER_PASSWORD)
            self.submit(page, "input[name=_continue]")
            check("/change/" in page.url, f"could not create {VIEWER_USER}: {page.url}")
        page.check("#id_is_active")
        page.check("#id_is_staff")
        page.uncheck("#id_is_superuser")
        for name in ("groups", "user_permissions"):  # start from no group and no permission
            if page.locator(f"#id_{name}_to option").count():
                page.click(f"#id_{name}_remove_all")
        for model in ("plugin", "delivery"):
            page.fill("#id_user_permissions_input", f"can view {model}")
            page.select_option("#id_user_permissions_from", label=f"JavaScript plugins | {model} | Can view {model}")
            page.click("#id_user_permissions_add")
        self.submit(page, "input[name=_save]")
        saved = "/admin/auth/user/" in page.url and "/change/" not in page.url
        check(saved, f"saving {VIEWER_USER} failed: {page.url} {self.messages(page)}")

    # -- running -------------------------------------------------------------------------------
    def run(self) -> bool:
        flows: list[tuple[str, Callable[[Page], None]]] = [
            ("1. list, filter, search", self.flow_list),
            ("2. call greet", self.flow_greet),
            ("3. refused plugins", self.flow_refused_plugins),
            ("4. add plugin, bulk enable/disable", self.flow_add_and_bulk),
            ("5. try page errors", self.flow_try_errors),
            ("6. view-only user", self.flow_view_only),
            ("7. deliveries: list, detail, retry now, failed count, discard", self.flow_deliveries),
            ("8. view-only user and deliveries", self.flow_deliveries_view_only),
        ]
        page = self.new_page()
        for name, flow in flows:
            print(f"--- {name}")
            before = len(self.server_errors)
            error: str | None = None
            try:
                flow(page)
            except Exception as exc:  # one broken flow must not hide the others
                error = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                self.shot(page, f"failed_{len(self.results) + 1}")
            if len(self.server_errors) > before:
                error = (error + "; " if error else "") + "server errors: " + ", ".join(self.server_errors[before:])
            self.results.append((name, error))
            print(f"    {'FAIL ' + error if error else 'ok'}")
        page.close()
        failed = [r for r in self.results if r[1]]
        print(f"walkthrough: {len(self.results) - len(failed)} passed, {len(failed)} failed")
        return not failed


# -- optional throw-away server -----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def demo_server(python: str) -> Iterator[str]:
    """Migrate and seed a temporary SQLite database, run the dev server on it, yield its URL."""
    with tempfile.TemporaryDirectory(prefix="admin-walkthrough-") as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3", "DEBUG": "1"}
        manage = [python, str(REPO / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=REPO)
        subprocess.run([*manage, "seed_demo"], env=env, check=True, cwd=REPO)
        port = _free_port()
        log = open(Path(tmp) / "runserver.log", "w")  # noqa: SIM115 (closed below)
        server = subprocess.Popen(
            [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], env=env, cwd=REPO, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/admin/login/", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"runserver did not start; see {log.name}") from None
                    time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)
            log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8765", help="server to test (ignored with --serve)")
    parser.add_argument("--serve", action="store_true", help="start a throw-away seeded server for the run")
    parser.add_argument("--django-python", default=str(REPO / ".venv" / "bin" / "python"), help="python for manage.py")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--shots", type=Path, default=Path("/tmp/shots"))
    options = parser.parse_args()
    options.shots.mkdir(parents=True, exist_ok=True)
    server = demo_server(options.django_python) if options.serve else nullcontext(options.base_url)
    with server as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=options.chromium, args=CHROMIUM_ARGS)
        try:
            ok = Walkthrough(browser, base_url, options.shots, run_id=time.strftime("%Y%m%d%H%M%S")).run()
        finally:
            browser.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
