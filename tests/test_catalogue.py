"""The hook catalogue: declarations, checks, undeclared calls, the admin page, save warnings."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.urls import reverse

from plugins_app import catalogue, checks_catalogue, hooks
from plugins_app.catalogue import HookDeclarationError, HookSpec, UndeclaredHook, declare_hook, declaring
from plugins_app.models import Plugin
from plugins_app.signals import bound

from .cli import run
from .conftest import GREETER
from .test_admin import form_data

CATALOGUE = "admin:plugins_app_plugin_catalogue"
NOTE = {"title": "note", "type": "object", "properties": {"id": {"type": "integer"}}}


def ids(messages) -> list[str]:
    return [m.id for m in messages]


# -- declaring ---------------------------------------------------------------------------------


def test_declare_a_hook_and_read_it_back():
    with declaring():
        spec = declare_hook(
            "tCat1",
            kind="action",
            args=[NOTE, {"type": "string"}],
            returns={"type": "null"},
            description="A note was saved.",
        )
        assert isinstance(spec, HookSpec)
        assert spec.args == (("note", NOTE), ("arg2", {"type": "string"}))
        assert spec.arg_names == ("note", "arg2")
        assert (spec.kind, spec.returns, spec.description) == ("action", {"type": "null"}, "A note was saved.")
        assert spec.declared_by == __name__
        assert catalogue.get("tCat1") is spec and catalogue.hooks()["tCat1"] is spec
    assert catalogue.get("tCat1") is None


def test_args_as_an_ordered_mapping_name_the_parameters():
    with declaring():
        spec = declare_hook(
            "tCat2", kind="filter", args=OrderedDict(text={"type": "string"}, count={"type": "integer"})
        )
        assert spec.arg_names == ("text", "count")


def test_schemas_are_copies_and_the_spec_is_frozen():
    schema = {"type": "object"}
    with declaring():
        spec = declare_hook("tCat3", kind="action", args={"x": schema})
        schema["type"] = "string"
        assert spec.args[0][1] == {"type": "object"}
        with pytest.raises(AttributeError):
            spec.kind = "filter"  # type: ignore[misc]
        with pytest.raises(TypeError):
            catalogue.hooks()["other"] = spec  # type: ignore[index]


def test_redeclaring_the_same_spec_is_idempotent_a_different_one_is_an_error():
    with declaring():
        first = declare_hook("tCat4", kind="action", args=[NOTE])
        assert declare_hook("tCat4", kind="action", args={"note": NOTE}) is first
        with pytest.raises(HookDeclarationError, match="declared already"):
            declare_hook("tCat4", kind="filter", args=[NOTE])
        with pytest.raises(HookDeclarationError, match="declared already"):
            declare_hook("tCat4", kind="action", args=[NOTE], description="other")
        assert catalogue.get("tCat4") is first


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "hook"}, "kind must be one of action, filter, call"),
        ({"kind": "action", "args": [{"type": "strnig"}]}, "argument 1 .* is not a valid JSON Schema"),
        (
            {"kind": "action", "args": [{"type": "object", "properties": {"a": {"minimum": "1"}}}]},
            "not a valid JSON Schema.*properties/a/minimum",
        ),
        ({"kind": "action", "args": ["string"]}, "must be a JSON Schema"),
        ({"kind": "action", "args": "note"}, "args must be a sequence"),
        ({"kind": "action", "args": {"my-note": {}}}, "'my-note' is not a JavaScript identifier"),
        ({"kind": "action", "args": {"class": {}}}, "'class' is not a JavaScript identifier"),
        ({"kind": "action", "args": [{"title": "a"}, {"title": "a"}]}, "used twice"),
        ({"kind": "action", "returns": {"type": 3}}, "returns is not a valid JSON Schema"),
        ({"kind": "action", "returns": {"const": float("nan")}}, "returns is not JSON data"),
        ({"kind": "filter"}, "a filter takes at least one argument"),
        ({"kind": "action", "description": 3}, "description must be a string"),
    ],
)
def test_malformed_declarations_are_refused_with_a_clear_error(kwargs, message):
    with declaring():
        with pytest.raises(HookDeclarationError, match=message):
            declare_hook("tCat5", **kwargs)
        assert catalogue.get("tCat5") is None


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 201, 3])
def test_hook_names_must_be_storable(name):
    with declaring(), pytest.raises(HookDeclarationError, match="hook name"):
        declare_hook(name, kind="action")


def test_declaring_restores_the_catalogue_including_hooks_declared_inside():
    before = dict(catalogue.hooks())
    spec = HookSpec("tCat6", "filter", (("value", {"type": "string"}),), {"type": "string"}, "d")
    with declaring(spec, {"name": "tCat7", "kind": "action"}) as inside:
        declare_hook("tCat8", kind="call")
        assert {"tCat6", "tCat7", "tCat8"} <= set(catalogue.hooks())
        assert inside["tCat6"] == spec
        assert catalogue.get("tCat6").declared_by != ""  # type: ignore[union-attr]
    assert dict(catalogue.hooks()) == before
    with pytest.raises(RuntimeError), declaring({"name": "tCat9", "kind": "action"}):
        raise RuntimeError
    assert catalogue.get("tCat9") is None
    # A declaration given to declaring() replaces the site's own for the block.
    site_spec = catalogue.get("greet")
    with declaring({"name": "greet", "kind": "action", "args": [{"type": "integer"}]}):
        assert catalogue.get("greet").kind == "action"  # type: ignore[union-attr]
    assert catalogue.get("greet") is site_spec


def test_the_app_and_the_demo_declare_the_hooks_they_call():
    on_request = catalogue.get("onRequest")
    assert on_request is not None and on_request.kind == "call" and on_request.arg_names == ("req",)
    declared = catalogue.hooks()
    # Every hook the demo calls: views (greet, summary, headline), the template (sidebar)
    # and the signal bindings of project/settings.py.
    assert {
        "greet": "call",
        "summary": "call",
        "headline": "filter",
        "sidebar": "action",
        "noteSaved": "action",
        "noteIndexed": "action",
    }.items() <= {n: s.kind for n, s in declared.items()}.items()
    template = (Path(__file__).resolve().parent.parent / "templates" / "demo" / "home.html").read_text()
    assert '{% plugin_hook "sidebar" %}' in template


@pytest.mark.parametrize(
    "name, identifier, parameter",
    [
        ("noteSaved", True, True),
        ("$x_1", True, True),
        ("déjà", True, True),
        ("delete", True, False),
        ("note-saved", False, False),
        ("1st", False, False),
        ("", False, False),
        ("a b", False, False),
    ],
)
def test_js_identifiers(name, identifier, parameter):
    assert catalogue.is_js_identifier(name) is identifier
    assert catalogue.is_js_identifier(name, reserved_ok=False) is parameter


# -- system checks ------------------------------------------------------------------------------


def test_the_demo_passes_the_catalogue_checks():
    assert checks_catalogue.check_catalogue() == []


def test_checks_report_names_references_and_the_setting(settings):
    with declaring():
        declare_hook("note-saved", kind="action")
        declare_hook("tCatRef", kind="action", args=[{"$ref": "#/$defs/missing"}])
        declare_hook("tCatRefOk", kind="action", args=[{"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}])
        found = checks_catalogue.check_catalogue()
        assert sorted(ids(found)) == ["plugins_app.E061", "plugins_app.W060"]
        assert "'note-saved'" in found[0].msg and "tCatRef" in found[1].msg and "#/$defs/missing" in found[1].msg
    settings.PLUGINS_APP = {"UNDECLARED_HOOKS": "loud"}
    assert ids(checks_catalogue.check_catalogue()) == ["plugins_app.E060"]


@pytest.mark.django_db
def test_checks_report_signal_bindings_of_undeclared_or_mismatched_hooks():
    with declaring():
        with bound("post_save", "tCatBound", sender="demo.Note"):
            [warning] = checks_catalogue.check_catalogue()
            assert warning.id == "plugins_app.W061" and "tCatBound" in warning.msg
            declare_hook("tCatBound", kind="filter", args=[NOTE])
            [error] = checks_catalogue.check_catalogue()
            assert error.id == "plugins_app.E062" and "declared as kind 'filter'" in error.msg
        with bound("pre_save", "tCatFilter", sender="demo.Note", mode="filter"):
            declare_hook("tCatFilter", kind="filter", args=[NOTE])
            assert checks_catalogue.check_catalogue() == []


# -- calling undeclared hooks --------------------------------------------------------------------


@pytest.mark.django_db
def test_an_undeclared_hook_warns_once_per_name(caplog):
    def undeclared() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "plugins_app.catalogue"]

    with declaring():  # also forgets the names already warned about
        with caplog.at_level(logging.WARNING, logger="plugins_app.catalogue"):
            assert hooks.do_action("tCatNobody", 1) == []
            assert hooks.apply_filters("tCatNobody", "v") == "v"
            assert hooks.apply_filters("tCatOther", "v") == "v"
            assert len(undeclared()) == 2
            assert "'tCatNobody' is called but not declared" in undeclared()[0] and "tCatOther" in undeclared()[1]
            declare_hook("tCatDeclared", kind="action")
            hooks.do_action("tCatDeclared")
            assert len(undeclared()) == 2


@pytest.mark.django_db
def test_undeclared_hooks_can_be_an_error_or_ignored(settings, make_plugin, caplog):
    make_plugin("const plugin = { tCatErr(v) { return v + '!'; } };", slug="err")
    settings.PLUGINS_APP = {"UNDECLARED_HOOKS": "error"}
    with declaring():
        with pytest.raises(UndeclaredHook, match="hook 'tCatErr' is not declared"):
            hooks.apply_filters("tCatErr", "v")
        with pytest.raises(UndeclaredHook):
            hooks.do_action("tCatErr", "v")
        declare_hook("tCatErr", kind="filter", args=[{"type": "string"}])
        assert hooks.apply_filters("tCatErr", "v") == "v!"
    settings.PLUGINS_APP = {"UNDECLARED_HOOKS": "ignore"}
    with declaring(), caplog.at_level(logging.WARNING, logger="plugins_app.catalogue"):
        assert hooks.apply_filters("tCatErr", "v") == "v!"
    assert not [r for r in caplog.records if r.name == "plugins_app.catalogue"]


# -- warnings when a plugin is saved -----------------------------------------------------------


def test_save_warnings_suggest_the_declared_name_and_count_parameters():
    with declaring(
        {"name": "noteSaved", "kind": "action", "args": [NOTE]},
        {"name": "tCatTwo", "kind": "filter", "args": {"value": {}, "request": {}}},
    ):
        warnings = catalogue.save_warnings(
            ["noteSavd", "tCatTwo", "helperOne", "helperTwo"], {"noteSavd": 1, "tCatTwo": 3}
        )
        assert (
            warnings[0]
            == "Hook 'noteSavd' is not declared by this site, so nothing calls it: did you mean 'noteSaved'?"
        )
        assert warnings[1].startswith("Hook 'tCatTwo' takes 3 parameters, but the site passes 2 (value, request)")
        assert "'helperOne', 'helperTwo' are not declared" in warnings[2]
        assert len(warnings) == 3
        # Fitting arities, and no suggestion of a hook the plugin defines already.
        assert catalogue.save_warnings(["noteSaved", "tCatTwo"], {"noteSaved": 1, "tCatTwo": 2}) == []
        [only] = catalogue.save_warnings(["noteSaved", "noteSaveds"], {"noteSaved": 0})
        assert "did you mean" not in only and "'noteSaveds' is not declared" in only


@pytest.mark.django_db
def test_validation_reports_each_hooks_arity_from_the_sandbox():
    source = """
      class Base { inherited(a, b, c) {} }
      const plugin = Object.assign(Object.create(Base.prototype), {
        none() {}, two(a, b) {}, defaults(a, b = 1) {}, rest(...xs) {}, arrow: (a) => a,
        bound: function (a, b, c, d) {}.bind(null, 1),
      });
      Object.defineProperty(plugin.none, "length", { get() { return 99; } });
    """
    plugin = Plugin(slug="arity", name="arity", source=source)
    plugin.full_clean()
    assert plugin.hooks == ["none", "two", "defaults", "rest", "arrow", "bound", "inherited"]
    assert plugin._hook_arity == {  # type: ignore[attr-defined]
        "none": None,
        "two": 2,
        "defaults": 1,
        "rest": 0,
        "arrow": 1,
        "bound": 3,
        "inherited": 3,
    }


@pytest.mark.django_db
def test_plugins_install_prints_the_warnings_to_stderr(tmp_path):
    path = tmp_path / "typo.js"
    path.write_text("const plugin = { noteSavd(note, meta) {}, greet(name, extra) { return name; } };")
    code, out, err = run("install", str(path), "--slug", "typo")
    assert code == 0 and "Installed typo" in out
    assert (
        f"{path}: warning: Hook 'noteSavd' is not declared by this site, so nothing calls it: did you mean 'noteSaved'?"
        in err
    )
    assert "Hook 'greet' takes 2 parameters, but the site passes 1 (name)" in err
    assert Plugin.objects.get(slug="typo").hooks == ["noteSavd", "greet"]  # saved all the same
    path.write_text("const plugin = { noteSaved(note, meta) {}, greet(name) { return name; } };")
    code, _, err = run("install", str(path), "--slug", "typo")
    assert code == 0 and "warning" not in err


# -- the admin ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_save_shows_the_warnings(admin_client):
    source = "const plugin = { noteSavd(note, meta) {} };"
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), form_data(source=source), follow=True)
    assert response.status_code == 200 and Plugin.objects.filter(slug="new").exists()
    warnings = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]
    assert warnings == [
        "New: Hook 'noteSavd' is not declared by this site, so nothing calls it: did you mean 'noteSaved'?"
    ]
    assert "did you mean" in response.content.decode()


@pytest.mark.django_db
def test_admin_catalogue_page_lists_declared_hooks_implementers_and_undeclared_hooks(admin_client, make_plugin):
    make_plugin(GREETER, slug="greeter", config={"version": "1"})
    make_plugin("const plugin = { noteSavd(n) {}, sidebar() { return 'x'; } };", slug="typo", enabled=False)
    changelist = admin_client.get(reverse("admin:plugins_app_plugin_changelist")).content.decode()
    assert f'href="{reverse(CATALOGUE)}" id="plugin-catalogue-link"' in changelist
    with declaring(
        {
            "name": "tCatPage",
            "kind": "filter",
            "args": {"title": {"type": "string"}},
            "returns": {"type": ["string", "null"]},
            "description": "Rewrites <titles>.",
        }
    ):
        response = admin_client.get(reverse(CATALOGUE))
    assert response.status_code == 200
    page = response.content.decode()
    declared = page[page.index('id="hook-catalogue-declared"') : page.index('id="hook-catalogue-undeclared"')]
    undeclared = page[page.index('id="hook-catalogue-undeclared"') :]
    assert "<code>onRequest</code>" in declared and "plugins_app.app_hooks" in declared
    row = declared[declared.index('id="hook-tcatpage"') :]
    row = row[: row.index("</tr>")]
    assert "filter" in row and "<code>title</code>: string" in row and "string | null" in row
    assert "Rewrites &lt;titles&gt;." in row
    greet = declared[declared.index('id="hook-greet"') :]
    greet = greet[: greet.index("</tr>")]
    greeter_url = reverse("admin:plugins_app_plugin_change", args=[Plugin.objects.get(slug="greeter").pk])
    assert f'href="{greeter_url}"' in greet and ">greeter</a>" in greet
    sidebar = declared[declared.index('id="hook-sidebar"') :]
    assert 'class="plugin-disabled" title="disabled">typo</a>' in sidebar[: sidebar.index("</tr>")]
    assert "<code>noteSavd</code>" in undeclared and "<code>noteSaved</code>" in undeclared  # did you mean
    assert "<code>farewell</code>" in undeclared and "<code>greet</code>" not in undeclared


@pytest.mark.django_db
def test_admin_catalogue_needs_the_view_permission_on_plugins(client):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(CATALOGUE)).status_code == 403
    changelist = client.get(reverse("admin:plugins_app_plugin_changelist"))
    assert changelist.status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    assert client.get(reverse(CATALOGUE)).status_code == 200
    assert 'id="plugin-catalogue-link"' in client.get(reverse("admin:plugins_app_plugin_changelist")).content.decode()
    client.logout()
    response = client.get(reverse(CATALOGUE))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_undeclared_hook_names_are_remembered_up_to_a_cap(caplog, monkeypatch):
    from plugins_app import catalogue as cat

    monkeypatch.setattr(cat, "MAX_WARNED_HOOKS", 5)
    monkeypatch.setattr(cat, "_warned", set())
    with caplog.at_level("WARNING", logger="plugins_app.catalogue"):
        for n in range(20):
            cat.check_called(f"fromRequest{n}")
    assert len(cat._warned) == 5
    messages = [r.getMessage() for r in caplog.records if r.name == "plugins_app.catalogue"]
    assert len(messages) == 6 and "no more are logged" in messages[-1]
