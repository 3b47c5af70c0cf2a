"""Page objects for the browser tests: what an operator does in the admin, in one place.

Tests say *what* (log in, open a plugin, type in the editor, click "Save", expect a
message); this module knows *how* (selectors, the CodeMirror editor, waiting). A new
admin screen (console, revisions, execution log...) gets a few methods here and small
tests beside the others.

Playwright is imported lazily so that collecting the tests works without it (the
conftest skips them then).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Response

ADMIN = "/admin/"
PLUGINS = "/admin/plugins_app/plugin/"


def expect(target: Any, message: str | None = None) -> Any:
    """Playwright's ``expect`` (imported on first use)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target, message)


class Editor:
    """The code editor (CodeMirror) that replaced the textarea of form field ``name``."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.textarea_selector = f'textarea[name="{name}"]'

    @property
    def root(self) -> Locator:
        """The editor's wrapper (inserted right after the hidden textarea)."""
        return self.page.locator(f"{self.textarea_selector} + .plugins-app-editor")

    @property
    def content(self) -> Locator:
        return self.root.locator(".cm-content")

    def wait_ready(self) -> Editor:
        expect(self.page.locator(f"{self.textarea_selector}[data-code-editor-ready]")).to_have_count(1)
        return self

    def type(self, text: str, *, clear: bool = True) -> None:
        """Type ``text`` with the keyboard, as a person would (one key at a time).

        The editor indents new lines and closes brackets as you type, as any code
        editor does: give one-line text, or text whose lines have no leading
        indentation, to get exactly ``text`` (or use :meth:`set_value`).
        """
        self.wait_ready()
        self.content.click()
        if clear:
            self.page.keyboard.press("ControlOrMeta+a")
            self.page.keyboard.press("Delete")
        self.page.keyboard.type(text)

    def set_value(self, text: str) -> None:
        """Replace the whole text at once (through the editor's API, like a paste)."""
        self.wait_ready()
        self.page.evaluate("([s, t]) => window.PluginsAppEditor.get(s).setValue(t)", [self.textarea_selector, text])

    def value(self) -> str:
        """The editor's text (what the form will post)."""
        self.wait_ready()
        return str(self.page.evaluate("s => window.PluginsAppEditor.get(s).getValue()", self.textarea_selector))

    def textarea_value(self) -> str:
        return self.page.locator(self.textarea_selector).input_value()

    def go_to(self, line: int, *, end: bool = True) -> None:
        """Put the cursor on ``line`` (1-based), at its end (or start), with the keyboard."""
        self.content.click()
        self.page.keyboard.press("ControlOrMeta+Home")
        for _ in range(line - 1):
            self.page.keyboard.press("ArrowDown")
        self.page.keyboard.press("End" if end else "Home")

    @property
    def error_line(self) -> Locator:
        """The line the editor marked as the validation error's."""
        return self.root.locator(".cm-plugins-app-error-line")

    def marked_error(self) -> dict[str, Any] | None:
        """``{line, column, message}`` of the marked error, or None."""
        return self.page.evaluate("s => window.PluginsAppEditor.get(s).error()", self.textarea_selector)  # type: ignore[no-any-return]


class AdminPages:
    """The Django admin as an operator uses it."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> Response | None:
        return self.page.goto(self.url(path))

    # -- session -----------------------------------------------------------------------------
    def login(self, username: str, password: str) -> None:
        self.page.context.clear_cookies()
        self.goto(f"{ADMIN}login/?next={ADMIN}")
        self.fill("Username", username)
        self.fill("Password", password)
        self.click_button("Log in")
        expect(self.page).to_have_url(self.url(ADMIN))

    # -- plugins -----------------------------------------------------------------------------
    def open_changelist(self, query: str | None = None) -> None:
        self.goto(PLUGINS + (f"?q={query}" if query else ""))

    def open_add_plugin(self) -> None:
        self.goto(f"{PLUGINS}add/")

    def open_plugin(self, slug: str) -> None:
        """Find the plugin in the list by its slug and open its page."""
        self.open_changelist(slug)
        row = self.page.locator("#result_list tbody tr").filter(has=self.page.get_by_text(slug, exact=True))
        row.locator("th a").first.click()  # the row's link to the plugin's page
        expect(self.page).to_have_url(re.compile(r"/admin/plugins_app/plugin/\d+/change/(\?.*)?$"))

    def fill(self, label: str, value: str) -> None:
        """Fill the form field labelled ``label`` (as shown, without the colon)."""
        self.page.get_by_label(re.compile(rf"^\s*{re.escape(label)}:?\s*$")).fill(value)

    def editor(self, name: str = "source") -> Editor:
        return Editor(self.page, name).wait_ready()

    def field_errors(self, name: str) -> Locator:
        return self.page.locator(f".field-{name} .errorlist")

    # -- generic -------------------------------------------------------------------------------
    def button(self, text: str) -> Locator:
        """A button or submit input (by its accessible name), else a link, labelled exactly ``text``."""
        pattern = re.compile(rf"^\s*{re.escape(text)}\s*$")
        return self.page.get_by_role("button", name=pattern).or_(self.page.get_by_role("link", name=pattern)).first

    def click_button(self, text: str) -> None:
        """Click the button (or submit input, or link) labelled ``text`` and wait for the page."""
        self.button(text).click()
        self.page.wait_for_load_state()

    def save(self, text: str = "Save") -> None:
        self.click_button(text)

    def messages(self) -> list[str]:
        return [m.strip() for m in self.page.locator("ul.messagelist li").all_inner_texts()]

    def assert_message(self, text: str | re.Pattern[str], level: str | None = None) -> None:
        """Expect a message (Django's messages framework) containing ``text``."""
        selector = "ul.messagelist li" + (f".{level}" if level else "")
        expect(self.page.locator(selector).filter(has_text=text).first).to_be_visible()

    def assert_no_horizontal_overflow(self) -> None:
        """The page fits the window's width (nothing cut off, no sideways scrolling)."""
        overflow = self.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than the {self.page.viewport_size} window"

    # == the screens reached from a plugin's page (console, revisions, log, health, transfer) ==
    # -- generic ----------------------------------------------------------------------------------
    def submit(self, text: str) -> None:
        """Click the button labelled ``text`` and wait until the page it leads to has loaded
        (so that the database reflects what the server did)."""
        with self.page.expect_navigation():
            self.button(text).click()

    def tool(self, label: str | re.Pattern[str]) -> Locator:
        """A button at the top right of the page (*Console*, *Revisions (3)*, *Export*...)."""
        pattern = label if isinstance(label, re.Pattern) else re.compile(rf"^\s*{re.escape(label)}\s*$")
        tools = self.page.locator("ul.object-tools")
        return tools.get_by_role("link", name=pattern).or_(tools.get_by_role("button", name=pattern)).first

    def open_tool(self, label: str | re.Pattern[str]) -> None:
        with self.page.expect_navigation():
            self.tool(label).click()

    def csrf_token(self) -> str:
        """The CSRF token of the page (every admin page has one: the log-out form)."""
        return self.page.locator("input[name=csrfmiddlewaretoken]").first.input_value()

    def post(
        self, path: str, data: dict[str, str] | None = None, *, files: dict[str, tuple[str, bytes]] | None = None
    ) -> tuple[int, str]:
        """POST ``data`` (and ``files``: field -> (file name, content)) to ``path`` with the
        browser's cookies and a valid CSRF token, as a crafted form would (for checking
        that the server refuses what the page does not offer). Returns the status and the
        body; redirects are not followed."""
        token = self.csrf_token()
        fields: dict[str, Any] = {"csrfmiddlewaretoken": token, **(data or {})}
        headers = {"X-CSRFToken": token, "Referer": self.page.url}
        if files:
            for name, (filename, content) in files.items():
                fields[name] = {"name": filename, "mimeType": "application/octet-stream", "buffer": content}
            response = self.page.request.post(self.url(path), multipart=fields, headers=headers, max_redirects=0)
        else:
            response = self.page.request.post(self.url(path), form=fields, headers=headers, max_redirects=0)
        body = response.text()
        assert "CSRF verification failed" not in body, "the POST was refused for its CSRF token, not its permissions"
        return response.status, body

    # -- add / change -----------------------------------------------------------------------------
    @property
    def source_file_input(self) -> Locator:
        return self.page.get_by_label(re.compile(r"^\s*Or upload a \.js file:?\s*$"))

    def upload_source(self, filename: str, content: str | bytes) -> None:
        """Choose a file for *Or upload a .js file* (as if picked in the file dialog)."""
        data = content.encode() if isinstance(content, str) else content
        self.source_file_input.set_input_files({"name": filename, "mimeType": "text/javascript", "buffer": data})

    def plugin_id(self) -> int:
        match = re.search(r"/plugin/(\d+)/", self.page.url)
        assert match, f"not on a plugin's page: {self.page.url}"
        return int(match.group(1))

    # -- console ------------------------------------------------------------------------------------
    def open_console(self) -> ConsolePage:
        """From a plugin's page, its *Console* button."""
        self.open_tool("Console")
        expect(self.page).to_have_url(re.compile(r"/console/(\?.*)?$"))
        return ConsolePage(self)

    # -- revisions ------------------------------------------------------------------------------------
    def open_revisions(self) -> None:
        """From a plugin's page, its *Revisions (N)* button; from a revision or diff page,
        the breadcrumbs' *Revisions*."""
        crumb = self.page.locator(".breadcrumbs").get_by_role("link", name="Revisions", exact=True)
        with self.page.expect_navigation():
            self.tool(re.compile(r"^\s*Revisions( \(\d+\))?\s*$")).or_(crumb).first.click()
        expect(self.page.locator("#revision-list")).to_be_visible()

    def revision_rows(self) -> Locator:
        return self.page.locator("#revision-list tbody tr")

    def compare_revisions(self, old: int, new: int) -> None:
        """On the revision list: pick *From* ``old`` and *To* ``new``, then compare."""
        self.page.get_by_label(f"Compare from revision {old}", exact=True).check()
        self.page.get_by_label(f"Compare to revision {new}", exact=True).check()
        self.submit("Compare selected revisions")
        expect(self.page.locator("#revision-diff-summary")).to_be_visible()

    def diff_of(self, name: str = "source") -> Locator:
        """The diff table of ``source``, ``config`` or ``config_schema`` on the diff page."""
        return self.page.locator(f"#diff-{name} table.revision-diff")

    def open_revision(self, number: int) -> None:
        """On the revision list: the revision's own page."""
        with self.page.expect_navigation():
            self.page.locator(f"#revision-{number}").get_by_role("link", name=str(number), exact=True).click()
        expect(self.page.locator("#revision-summary")).to_be_visible()

    # -- execution log and health -------------------------------------------------------------------
    def call_rows(self) -> Locator:
        return self.page.locator("#result_list tbody tr")

    def open_health(self) -> None:
        """From a plugin's page, *Health details* in its Health section."""
        with self.page.expect_navigation():
            self.page.get_by_role("link", name="Health details", exact=True).click()
        expect(self.page.locator("#plugin-health-summary")).to_be_visible()

    def health_value(self, row: str, column: int) -> Locator:
        """A number of the Health page's summary: ``row`` ("Calls", "Errors"...), ``column``
        1 for the last hour and 2 for the last 24 hours."""
        line = self.page.locator("#plugin-health-summary tbody tr").filter(
            has=self.page.get_by_role("rowheader", name=row, exact=True)
        )
        return line.locator("td").nth(column - 1)

    # -- export / import ----------------------------------------------------------------------------
    def export_plugin(self) -> tuple[str, dict[str, Any]]:
        """From a plugin's page, *Export*: the downloaded file's name and JSON."""
        with self.page.expect_download() as info:
            self.tool("Export").click()
        download = info.value
        path = download.path()
        assert path is not None, f"the download failed: {download.failure()}"
        return download.suggested_filename, json.loads(Path(path).read_text(encoding="utf-8"))

    def open_import(self) -> None:
        """From the plugin list, its *Import* button."""
        self.open_changelist()
        self.open_tool("Import")
        expect(self.page.get_by_role("heading", name="Import plugins")).to_be_visible()

    def import_file(self, filename: str, content: str | bytes, *, replace: bool = False, enable: bool = False) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.page.get_by_label(re.compile(r"^\s*Export file:?\s*$")).set_input_files(
            {"name": filename, "mimeType": "application/json", "buffer": data}
        )
        self.page.get_by_label("Replace plugins that exist").set_checked(replace)
        self.page.get_by_label("Enable after import").set_checked(enable)
        self.submit("Import")


class ConsolePage:
    """A plugin's *Console* (``<id>/console/``): pick a hook, give JSON arguments, choose
    the saved version or the draft and a dry or real run, press *Run*, read the outcome."""

    def __init__(self, admin: AdminPages) -> None:
        self.admin = admin
        self.page = admin.page

    # -- the form ------------------------------------------------------------------------------
    @property
    def hook(self) -> Locator:
        return self.page.get_by_label(re.compile(r"^\s*Hook:?\s*$"))

    @property
    def args(self) -> Locator:
        return self.page.get_by_label(re.compile(r"^\s*Arguments \(JSON array\):?\s*$"))

    @property
    def run_button(self) -> Locator:
        return self.page.locator("#console_form").get_by_role("button", name="Run", exact=True)

    def mode_option(self, mode: str) -> Locator:
        """The radio button of ``mode``: ``"dry"`` or ``"real"`` (by its label)."""
        label = {"dry": "Dry run: writes are rolled back", "real": "Real run: writes are kept"}[mode]
        return self.page.get_by_label(label, exact=True)

    def target_option(self, target: str) -> Locator:
        """The radio button of ``target``: ``"saved"`` or ``"draft"`` (by its label)."""
        label = re.compile(r"^\s*the saved version" if target == "saved" else r"^\s*the unsaved draft")
        return self.page.get_by_label(label)

    def draft_editor(self, name: str = "source") -> Editor:
        return Editor(self.page, name).wait_ready()

    def run(
        self, hook: str | None = None, args: str | None = None, *, mode: str | None = None, target: str | None = None
    ) -> None:
        """Fill in what is given (the rest stays as it is) and press *Run*; returns once the
        outcome's page has loaded."""
        if hook is not None:
            self.hook.select_option(hook)
        if args is not None:
            self.args.fill(args)
        if target is not None:
            self.target_option(target).check()
        if mode is not None:
            self.mode_option(mode).check()
        with self.page.expect_navigation():
            self.run_button.click()

    # -- the outcome -------------------------------------------------------------------------------
    @property
    def mode_banner(self) -> Locator:
        """The line above the result saying what ran ("Dry run: writes are rolled back ·
        saved version 1")."""
        return self.page.locator("#plugin-console-mode")

    @property
    def result(self) -> Locator:
        return self.page.locator("#plugin-console-result")

    def result_json(self) -> Any:
        expect(self.result).to_be_visible()
        return json.loads(self.result.inner_text())

    @property
    def log(self) -> Locator:
        return self.page.locator("#plugin-console-log")

    @property
    def failure(self) -> Locator:
        """The error box (its heading says "at line N, column M")."""
        return self.page.locator("#plugin-console-failure")

    @property
    def error(self) -> Locator:
        return self.page.locator("#plugin-console-error")

    def fact(self, name: str) -> Locator:
        """A cell of the details table: ``"Host calls"``, ``"Rows written"``..."""
        return (
            self.page.locator("#plugin-console-facts tr")
            .filter(has=self.page.get_by_role("rowheader", name=name, exact=True))
            .locator("td")
        )
