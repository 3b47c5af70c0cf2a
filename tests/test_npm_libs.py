"""Real npm libraries, bundled with esbuild, run unchanged as plugins (issue 11, item 8).

Each library in tests/npm_libs/src/ is bundled twice (tests/npm_libs/build.py, the recipe of
docs/bundling.md): as a classic script (esbuild IIFE, `var plugin = ...`) and as an ES module
(`export default`). Both are installed through the app (validated and saved like any plugin)
and their hooks are called through real sandboxes. Expected values come from independent
implementations where Python has one (uuid5, hmac/hashlib, base64, urllib.parse) and from
Node.js 20 running the same bundles otherwise (normalize-url, qs: marked "Node 20" below).

Needs node and npm (npm ci from the registry, once per package-lock.json, into
~/.cache/plugins_app-tests/); skipped without them unless NODE_TESTS=required.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from plugins_app import conf, hooks
from plugins_app.models import Plugin
from tests.npm_libs import build

pytestmark = pytest.mark.node

STYLES = build.STYLES


@pytest.fixture(scope="session")
def bundles() -> Path:
    """The folder of the built bundles (``script/<lib>.js``, ``module/<lib>.js``)."""
    required = os.environ.get("NODE_TESTS") == "required"
    try:
        return build.build()
    except build.ToolsMissing as exc:
        if required:
            pytest.fail(f"NODE_TESTS=required but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def minified_bundles(bundles: Path) -> Path:
    """The same, built with ``--minify`` (docs/bundling.md, for bundles near the size limit)."""
    return build.build(minify=True)


@pytest.fixture
def install(make_plugin: Callable[..., Plugin], bundles: Path) -> Callable[..., Plugin]:
    """Install the bundle of ``lib`` in ``style`` as an enabled plugin with slug ``lib``."""

    def do(lib: str, style: str, **fields) -> Plugin:
        source = (bundles / style / f"{lib}.js").read_text("utf-8")
        return make_plugin(source, slug=lib.replace("_", "-"), **fields)

    return do


def call(lib: str, hook: str, *args):
    return hooks.call(lib.replace("_", "-"), hook, *args)


# -- the bundles themselves ------------------------------------------------------------------


def test_bundle_shapes_and_sizes(bundles):
    limit = conf.get("MAX_SOURCE_BYTES")
    for style in STYLES:
        for lib in build.entries(style):
            text = (bundles / style / f"{lib}.js").read_text("utf-8")
            size = len(text.encode("utf-8"))
            # Every one fits MAX_SOURCE_BYTES unminified (the largest, qs, uses about half).
            assert size <= limit, f"{style}/{lib}.js is {size} bytes, over the limit of {limit}"
            if style == "script":
                assert text.startswith("var plugin = (() => {"), lib
                assert text.rstrip().endswith("plugin = plugin.default;"), lib
            else:
                assert re.search(r"export \{[^}]*\bas default\b[^}]*\};\s*$", text), lib
                assert "var plugin" not in text, lib
    module_host = (bundles / "module" / "host_import.js").read_text("utf-8")
    assert re.findall(r"^import .*$", module_host, re.M) == ['import { config, log } from "plugin:host";']


def test_script_without_the_footer_has_no_hooks(bundles, make_plugin):
    """docs/bundling.md: the IIFE's exports object holds getters, which are not hooks."""
    text = (bundles / "script" / "nanoid.js").read_text("utf-8")
    without = text.rstrip().removesuffix("plugin = plugin.default;")
    assert without != text.rstrip()
    with pytest.raises(ValidationError) as info:
        make_plugin(without, slug="no-footer")
    assert info.value.message_dict["source"] == ["The `plugin` object defines no functions (hooks)."]


NODE_ONLY = 'import { createHash } from "node:crypto";\nexport default { h(x) { return createHash("sha256").update(x).digest("hex"); } };\n'


def test_node_builtins_are_refused_when_bundling_for_the_browser(bundles):
    done = build.bundle_text(NODE_ONLY, "--platform=browser", "--format=esm")
    assert done.returncode != 0
    assert 'Could not resolve "node:crypto"' in done.stderr


def test_a_bundle_built_for_node_fails_at_save(bundles, make_plugin):
    done = build.bundle_text(NODE_ONLY, "--platform=node", *build.SCRIPT_FLAGS)
    assert done.returncode == 0, done.stderr
    with pytest.raises(ValidationError) as info:
        make_plugin(done.stdout, slug="node-only")
    assert 'Dynamic require of "node:crypto" is not supported' in info.value.message_dict["source"][0]


DYNAMIC = "export default { async load(name) { const m = await import(name); return Object.keys(m); } };\n"


@pytest.mark.parametrize("style", STYLES)
def test_a_dynamic_import_left_in_a_bundle_is_refused_at_save(bundles, make_plugin, style):
    """esbuild cannot bundle ``import(name)``: it stays in the bundle, and the save refuses it."""
    flags = build.SCRIPT_FLAGS if style == "script" else build.MODULE_FLAGS
    done = build.bundle_text(DYNAMIC, "--platform=browser", *flags)
    assert done.returncode == 0, done.stderr
    assert "import(name)" in done.stdout
    with pytest.raises(ValidationError) as info:
        make_plugin(done.stdout, slug="dynamic")
    assert "import() of a computed specifier" in info.value.message_dict["source"][0]


def test_hooks_found_at_install(install):
    """The hooks stored at save time are the default export's functions, in both styles."""
    for style in STYLES:
        plugin = install("jose", style)
        assert sorted(plugin.hooks) == ["header", "sign", "verify"], style
        plugin.delete()


# -- uuid --------------------------------------------------------------------------------------

UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.mark.parametrize("style", STYLES)
def test_uuid(install, style):
    install("uuid", style)
    ids = call("uuid", "v4", 500)
    # v4() uses crypto.randomUUID, v4({}) crypto.getRandomValues.
    for path in ("native", "fromBytes"):
        assert len(ids[path]) == 500
        assert all(UUID_V4.match(i) for i in ids[path]), ids[path][:3]
        assert len(set(ids[path])) == 500
        # Every hex digit of the random positions occurs (not a constant or all-zero source).
        assert set("".join(ids[path]).replace("-", "")) == set("0123456789abcdef")
    assert not set(ids["native"]) & set(ids["fromBytes"])
    assert call("uuid", "v4", 1) != call("uuid", "v4", 1)

    # RFC 9562 / Python's uuid5: the published DNS vector and a few more names.
    assert call("uuid", "v5", "www.example.com", str(uuid.NAMESPACE_DNS)) == "2ed6657d-e927-568b-95e1-2665a8aea6a2"
    for name, ns in [
        ("python.org", uuid.NAMESPACE_DNS),
        ("https://example.com/ä?x=1", uuid.NAMESPACE_URL),
        ("日本語 🎉", uuid.NAMESPACE_OID),
        ("", uuid.NAMESPACE_X500),
    ]:
        assert call("uuid", "v5", name, str(ns)) == str(uuid.uuid5(ns, name)), name

    some = ids["native"][0]
    assert call("uuid", "inspect", some) == {
        "valid": True,
        "version": 4,
        "roundTrip": some,
        "nil": "00000000-0000-0000-0000-000000000000",
    }
    assert call("uuid", "inspect", "not-a-uuid")["valid"] is False


# -- nanoid ------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_nanoid(install, style):
    install("nanoid", style)
    alphabet = call("nanoid", "alphabet")
    assert sorted(alphabet) == sorted("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    ids = call("nanoid", "ids", 300)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{21}", i) for i in ids), ids[:3]
    assert len(set(ids)) == 300
    # 6,300 draws from 64 symbols: each occurs (the chance one is missing is about 1e-41).
    assert set("".join(ids)) == set(alphabet)
    assert {len(i) for i in call("nanoid", "ids", 20, 7)} == {7}
    custom = call("nanoid", "custom", "abc", 12, 100)
    assert all(re.fullmatch("[abc]{12}", i) for i in custom)
    assert set("".join(custom)) == set("abc")
    assert len(set(custom)) == 100


# -- jose ----------------------------------------------------------------------------------------

SECRET = "correct horse battery staple, at least 32 bytes long"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def python_jwt(payload: dict, secret: str = SECRET, header: dict | None = None) -> str:
    """HS256 JWT built with the standard library only."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


@pytest.mark.parametrize("style", STYLES)
def test_jose_hs256(install, style):
    install("jose", style, config={"secret": SECRET})
    now = int(time.time())
    claims = {"role": "editor", "name": "Zoë 日本 🎉", "n": [1, 2, {"x": None}]}
    token = call(
        "jose", "sign", claims, {"subject": "user-1", "issuer": "site", "issuedAt": now, "expiresAt": now + 600}
    )

    # Python checks the signature and decodes what jose produced.
    head, body, sig = token.split(".")
    expected_sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(sig), expected_sig)
    assert json.loads(b64url_decode(head)) == {"alg": "HS256", "typ": "JWT"}
    payload = json.loads(b64url_decode(body))
    assert payload == {**claims, "sub": "user-1", "iss": "site", "iat": now, "exp": now + 600}
    assert call("jose", "header", token) == {"alg": "HS256", "typ": "JWT"}

    # Round trip, with claim checks.
    verified = call("jose", "verify", token, {"issuer": "site", "subject": "user-1"})
    assert verified == {"ok": True, "payload": payload, "header": {"alg": "HS256", "typ": "JWT"}}
    wrong_issuer = call("jose", "verify", token, {"issuer": "elsewhere"})
    assert (wrong_issuer["ok"], wrong_issuer["code"]) == (False, "ERR_JWT_CLAIM_VALIDATION_FAILED")

    # A token made by Python verifies; a payload or signature changed after signing does not.
    assert call("jose", "verify", python_jwt({"sub": "py", "exp": now + 60}))["payload"] == {
        "sub": "py",
        "exp": now + 60,
    }
    forged_body = b64url(json.dumps({**payload, "role": "admin"}).encode())
    for tampered in (
        f"{head}.{forged_body}.{sig}",
        f"{head}.{body}.{b64url(bytes([expected_sig[0] ^ 1]) + expected_sig[1:])}",
        python_jwt({"sub": "py", "exp": now + 60}, secret=SECRET + "!"),
    ):
        result = call("jose", "verify", tampered)
        assert result["ok"] is False, tampered
        assert result["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", result

    # Expired: signed by jose and by Python.
    for expired in (
        call("jose", "sign", {"a": 1}, {"issuedAt": now - 7200, "expiresAt": now - 3600}),
        python_jwt({"a": 1, "exp": now - 3600}),
    ):
        result = call("jose", "verify", expired)
        assert (result["ok"], result["code"], result["name"]) == (False, "ERR_JWT_EXPIRED", "JWTExpired"), result

    # alg "none" and a malformed token are refused.
    unsigned = b64url(b'{"alg":"none"}') + "." + b64url(b'{"a":1}') + "."
    assert call("jose", "verify", unsigned)["code"] == "ERR_JOSE_ALG_NOT_ALLOWED"
    assert call("jose", "verify", "not.a.jwt")["ok"] is False


@pytest.mark.parametrize("style", STYLES)
def test_jose_minified(make_plugin, minified_bundles, bundles, style):
    source = (minified_bundles / style / "jose.js").read_text("utf-8")
    assert len(source) < 0.6 * len((bundles / style / "jose.js").read_text("utf-8"))
    make_plugin(source, slug="jose", config={"secret": SECRET})
    now = int(time.time())
    token = call("jose", "sign", {"a": 1}, {"expiresAt": now + 60})
    assert call("jose", "verify", token)["payload"] == {
        "a": 1,
        "iat": json.loads(b64url_decode(token.split(".")[1]))["iat"],
        "exp": now + 60,
    }
    assert call("jose", "verify", python_jwt({"a": 2, "exp": now - 1}))["code"] == "ERR_JWT_EXPIRED"


# -- js-base64 -----------------------------------------------------------------------------------

TEXTS = [
    "",
    "a",
    "ab",
    "abc",
    "Grüße, 日本語, emoji 🎉",
    "\u0000\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
    "line\nbreak\ttab",
    "~~~???>>>",
]


@pytest.mark.parametrize("style", STYLES)
def test_base64(install, style):
    install("base64", style)
    for text in TEXTS:
        raw = text.encode("utf-8")
        encoded = call("base64", "encode", text)
        assert encoded == base64.b64encode(raw).decode(), text
        assert call("base64", "encode", text, True) == b64url(raw), text
        assert call("base64", "decode", encoded) == text
        assert call("base64", "decode", b64url(raw)) == text  # URL-safe, unpadded input too
    every_byte = list(range(256))
    assert call("base64", "fromBytes", every_byte) == base64.b64encode(bytes(every_byte)).decode()
    assert call("base64", "bytes", base64.b64encode(bytes(every_byte)).decode()) == every_byte
    assert call("base64", "isValid", "SGVsbG8=") is True
    assert call("base64", "isValid", "SGVs*bG8=") is False


# -- qs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_qs(install, style):
    install("qs", style)
    parsed = call("qs", "parse", "a[b][c]=d&e[]=1&e[]=2&f[0][g]=h&f[1][g]=i&j=%E2%82%AC%20x")
    assert parsed == {"a": {"b": {"c": "d"}}, "e": ["1", "2"], "f": [{"g": "h"}, {"g": "i"}], "j": "€ x"}
    # qs's default depth (5): the rest of the key stays one literal key (Node 20).
    assert call("qs", "parse", "a[b][c][d][e][f][g][h]=1") == {"a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "1"}}}}}}}
    assert call("qs", "parse", "a.b.c=1&x[y]=2", {"allowDots": True}) == {"a": {"b": {"c": "1"}}, "x": {"y": "2"}}
    assert call("qs", "parse", "?a=1&b=2", {"ignoreQueryPrefix": True}) == {"a": "1", "b": "2"}

    value = {"a": {"b": {"c": "d"}}, "e": [1, 2], "f": [{"g": "h"}], "ключ": "значение €"}
    text = call("qs", "stringify", value)
    expected = "&".join(
        urllib.parse.quote(k, safe="") + "=" + urllib.parse.quote(v, safe="")
        for k, v in [("a[b][c]", "d"), ("e[0]", "1"), ("e[1]", "2"), ("f[0][g]", "h"), ("ключ", "значение €")]
    )
    assert text == expected
    assert call("qs", "parse", text) == {
        "a": {"b": {"c": "d"}},
        "e": ["1", "2"],
        "f": [{"g": "h"}],
        "ключ": "значение €",
    }
    assert (
        call(
            "qs",
            "stringify",
            {"a": {"b": {"c": "d"}}, "e": [1, 2]},
            {"encodeValuesOnly": True, "arrayFormat": "brackets"},
        )
        == "a[b][c]=d&e[]=1&e[]=2"
    )
    assert call("qs", "stringify", {"a": {"b": None, "d": ""}}) == "a%5Bb%5D=&a%5Bd%5D="


# -- @noble/hashes (TextEncoder, crypto.getRandomValues) -----------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_noble_hashes(install, style):
    install("noble_hashes", style)
    for text in ["", "abc", "Grüße, 日本語, emoji 🎉", "x" * 1000]:
        raw = text.encode("utf-8")
        assert call("noble_hashes", "sha256", text) == hashlib.sha256(raw).hexdigest(), text
        assert call("noble_hashes", "sha512", text) == hashlib.sha512(raw).hexdigest(), text
        assert (
            call("noble_hashes", "hmacSha256", "kéy", text) == hmac.new("kéy".encode(), raw, hashlib.sha256).hexdigest()
        )
    first, second = call("noble_hashes", "random", 8192), call("noble_hashes", "random", 8192)
    assert len(first) == 8192 and all(0 <= b <= 255 for b in first)
    assert first != second
    assert len(set(first)) == 256  # every byte value in 8 KiB (missing one: chance about 3e-12)


# -- normalize-url (URL, URLSearchParams, structuredClone) ------------------------------------

# Outputs of normalize-url under Node 20 (the same bundle, `node` on tests/npm_libs/build.py's output).
NORMALIZED = {
    "HTTP://www.Example.com:80/../a/./b/?b=2&a=1&utm_source=x#frag": "http://example.com/a/b?a=1&b=2#frag",
    "sindresorhus.com": "http://sindresorhus.com",
    "//sindresorhus.com:80/": "http://sindresorhus.com",
    "https://êxample.com/ä?q=ö ü": "https://xn--xample-hva.com/%C3%A4?q=%C3%B6+%C3%BC",
    "http://user:pw@example.com/x/": "http://example.com/x",
    "https://example.com/foo//bar/index.html?": "https://example.com/foo/bar/index.html",
    "mailto:someone@example.com": "mailto:someone@example.com",
    "https://example.com/?a=b%20c&c=%7E": "https://example.com/?a=b+c&c=~",
    "http://[::1]:8080/a%2fb": "http://[::1]:8080/a%2Fb",
}


@pytest.mark.parametrize("style", STYLES)
def test_normalize_url(install, style):
    install("normalize_url", style)
    for url, expected in NORMALIZED.items():
        assert call("normalize_url", "normalize", url) == {"ok": expected}, url
    assert call(
        "normalize_url",
        "normalize",
        "https://www.example.com/index.php?b=1",
        {"stripWWW": False, "removeQueryParameters": ["b"]},
    ) == {"ok": "https://www.example.com/index.php"}
    assert call("normalize_url", "normalize", "http://") == {"error": "TypeError", "message": "Invalid URL"}
    assert call("normalize_url", "many", ["EXAMPLE.com/a/", "https://b.example.org:443/?z=1&y=2"]) == {
        "same": True,
        "out": {
            "EXAMPLE.com/a/": "http://example.com/a",
            "https://b.example.org:443/?z=1&y=2": "https://b.example.org/?y=2&z=1",
        },
    }


# -- module only: "plugin:host" left external by esbuild ---------------------------------------


def test_module_imports_plugin_host_next_to_a_bundled_library(install):
    install("host_import", "module", config={"namespace": str(uuid.NAMESPACE_URL)})
    result = hooks.run("host-import", "named", "https://example.com/")
    assert result.value == {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "https://example.com/")),
        "namespace": str(uuid.NAMESPACE_URL),
    }
    assert [line.message for line in result.logs] == ["naming https://example.com/"]
