"""Revisions in a real browser, as a new operator uses them: two tabs editing the same
plugin (the later save is refused and says what changed), the revision list, the diff
between two revisions (unified and side by side), and *Roll back to this revision*."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from plugins_app.models import Plugin, PluginRevision

from .pages import AdminPages, expect

pytestmark = pytest.mark.django_db(transaction=True)

V1 = 'const plugin = {\n  greet(name) {\n    return "Hello, " + name;\n  },\n};\n'
V2 = V1.replace('"Hello, "', '"Hi, "')
V3 = V2.replace("  },\n};", '  },\n  bye() {\n    return "Bye";\n  },\n};')


def revision_numbers(plugin: Plugin) -> list[int]:
    return list(PluginRevision.objects.filter(plugin=plugin).order_by("number").values_list("number", flat=True))


def test_a_save_from_a_page_opened_before_another_save_is_refused(
    admin: AdminPages, make_browser_plugin: Callable[..., Plugin]
) -> None:
    plugin = make_browser_plugin(V1, "greeter")
    first = admin
    second = AdminPages(admin.page.context.new_page(), admin.base_url)  # another tab, same login
    first.open_plugin("greeter")
    second.open_plugin("greeter")

    # Tab 1 changes the source, enables the plugin and saves. (The tab in front is the one
    # used, as a person would: Chromium slows down timers in background tabs.)
    first.page.bring_to_front()
    first.editor("source").set_value(V2)
    first.page.get_by_label("Enabled").check()
    first.fill("Change comment", "friendlier greeting")
    first.submit("Save and continue editing")
    first.assert_message("was changed successfully")
    first.assert_message("Recorded revision 2")

    # Tab 2, opened before that save, changes the source too and saves: refused.
    mine = V1.replace('"Hello, "', '"Good day, "')
    second.page.bring_to_front()
    second.editor("source").set_value(mine)
    second.submit("Save and continue editing")
    expect(second.page.locator("p.errornote")).to_contain_text("Please correct the error below.")
    note = second.page.locator("ul.errorlist.nonfield").filter(has_text="Someone else saved this plugin")
    expect(note).to_be_visible()
    expect(note).to_contain_text("last saved by admin")
    expect(note).to_contain_text("Changed since: Source, Enabled.")
    expect(note).to_contain_text("New revisions: 2 (source;")
    expect(note).to_contain_text("Your changes were not saved")
    expect(second.page.locator("ul.messagelist li.success")).to_have_count(0)
    second.assert_message("See what changed since you opened the page: revision 1 → 2.", "warning")
    assert second.editor("source").value() == mine  # what was typed is still there to copy

    plugin.refresh_from_db()
    assert plugin.source == V2 and plugin.enabled  # tab 1's save, untouched
    assert revision_numbers(plugin) == [1, 2]

    # The warning links to what changed: the diff from the revision tab 2 opened on.
    with second.page.expect_navigation():
        second.page.locator("#edit-conflict-diff").click()
    expect(second.page.locator("#revision-diff-changed")).to_have_text("Changed: source.")
    expect(second.diff_of("source").locator("tr.add td.code")).to_contain_text(['return "Hi, " + name;'])

    # Saving again after reloading works (the page carries the new token).
    second.open_plugin("greeter")
    second.editor("source").set_value(mine)
    second.submit("Save and continue editing")
    second.assert_message("was changed successfully")
    plugin.refresh_from_db()
    assert plugin.source == mine

    # Any save counts, not only the source's: tab 1 disables the plugin with its button...
    first.page.bring_to_front()
    first.open_tool("Disable")
    first.assert_message("Disabled 1 plugin")
    # ... and tab 2's next save (its page was loaded before that) is refused.
    second.page.bring_to_front()
    second.fill("Priority", "5")
    second.submit("Save and continue editing")
    note = second.page.locator("ul.errorlist.nonfield")
    expect(note).to_contain_text("Someone else saved this plugin after you opened this page")
    expect(note).to_contain_text("Changed since: Enabled.")
    plugin.refresh_from_db()
    assert not plugin.enabled and plugin.priority == 100 and plugin.source == mine
    second.page.close()


def test_revisions_diff_and_roll_back(admin: AdminPages, make_browser_plugin: Callable[..., Plugin]) -> None:
    plugin = make_browser_plugin(V1, "greeter")
    admin.open_plugin("greeter")
    for source, comment in ((V2, "say hi"), (V3, "add bye")):
        admin.editor("source").set_value(source)
        admin.fill("Change comment", comment)
        admin.submit("Save and continue editing")
        admin.assert_message("was changed successfully")
    admin.assert_message("Recorded revision 3 (source)")
    expect(admin.tool("Revisions (3)")).to_be_visible()

    admin.open_revisions()
    rows = admin.revision_rows()
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("add bye")  # newest first
    expect(rows.nth(0)).to_contain_text("current")
    expect(rows.nth(2)).to_contain_text("created")

    # Compare revision 1 with revision 3: both sides of the change are shown.
    admin.compare_revisions(1, 3)
    expect(admin.page.locator("#revision-diff-changed")).to_have_text("Changed: source.")
    expect(admin.page.locator("#diff-source h2")).to_contain_text("(+4 −1)")
    unified = admin.diff_of("source")
    expect(unified.locator("tr.del td.code")).to_have_text(['    return "Hello, " + name;'])
    expect(unified.locator("tr.add td.code")).to_contain_text(['return "Hi, " + name;', "bye() {", 'return "Bye";'])
    expect(admin.page.locator("#diff-config h2")).to_contain_text("(unchanged)")
    with admin.page.expect_navigation():
        admin.page.get_by_role("link", name="Side by side", exact=True).click()
    split = admin.diff_of("source")
    changed = split.locator("tr.change")
    expect(changed.first.locator("td.change-old")).to_have_text('    return "Hello, " + name;')
    expect(changed.first.locator("td.change-new")).to_have_text('    return "Hi, " + name;')
    expect(split.locator("td.add")).to_contain_text(["bye() {"])

    # Revision 1's page: roll back to it, with a comment.
    admin.open_revisions()
    admin.open_revision(1)
    expect(admin.page.locator("#revision-source pre")).to_have_text(V1.rstrip("\n"))
    form = admin.page.locator("#revision-rollback-form")
    expect(form).to_contain_text("Restores this revision's source.")
    admin.page.get_by_label("Comment:").fill("hi was too casual")
    admin.submit("Roll back to this revision")
    expect(admin.page).to_have_url(re.compile(rf"/admin/plugins_app/plugin/{plugin.pk}/change/$"))
    admin.assert_message("Rolled back to revision 1: recorded revision 4 (rollback to 1: source)", "success")

    assert admin.editor("source").value() == V1  # the page shows the restored source
    expect(admin.tool("Revisions (4)")).to_be_visible()
    plugin.refresh_from_db()
    assert plugin.source == V1 and plugin.hooks == ["greet"]
    latest = PluginRevision.objects.get(plugin=plugin, number=4)
    assert latest.source == V1 and latest.comment == "hi was too casual"
    assert revision_numbers(plugin) == [1, 2, 3, 4]  # history is kept, not rewound

    admin.open_revisions()
    expect(admin.revision_rows().first).to_contain_text("rollback to 1")
    expect(admin.revision_rows().first).to_contain_text("hi was too casual")
    admin.open_revision(4)
    expect(admin.page.locator("#revision-rollback-form")).to_have_count(0)  # nothing to restore
    expect(admin.page.locator("#revision-matches")).to_be_visible()

    # A rollback from a revision page opened before someone else's save is refused.
    admin.open_revisions()
    admin.open_revision(2)
    plugin.refresh_from_db()
    plugin.source = V3
    plugin.full_clean()
    plugin.save()  # revision 5, saved meanwhile
    admin.submit("Roll back to this revision")
    admin.assert_message("Not rolled back: plugin 'greeter' is at revision 5, not 4", "error")
    plugin.refresh_from_db()
    assert plugin.source == V3 and revision_numbers(plugin) == [1, 2, 3, 4, 5]
