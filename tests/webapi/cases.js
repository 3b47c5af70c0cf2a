// Tricky inputs for the sandbox's web APIs, shared by make_fixtures.mjs (run under Node.js
// 20, which records what each case gives) and tests/test_webapi.py (which runs the same
// cases as a plugin in the sandbox and compares). A classic script: it defines one global,
// WEBAPI_CASES, a list of [name, function]; a function returns JSON-able data, or a promise
// of it. `thrown(fn)` records an error's name (plus the DOMException code); `thrownMessage`
// also its message, where the message is specified (or ours deliberately matches Node's).
var WEBAPI_CASES = (function () {
  "use strict";
  const thrown = (fn) => {
    try { return { returned: fn() }; } catch (e) {
      return e instanceof DOMException ? { error: e.name, code: e.code, isDOMException: true } : { error: e && e.name };
    }
  };
  const thrownMessage = (fn) => {
    try { return { returned: fn() }; } catch (e) {
      return { error: e && e.name, message: e && e.message, isDOMException: e instanceof DOMException };
    }
  };
  const rejected = async (fn) => {
    try { return { resolved: await fn() }; } catch (e) {
      return e instanceof DOMException ? { error: e.name, isDOMException: true } : { error: e && e.name };
    }
  };
  const bytes = (view) => Array.from(view instanceof ArrayBuffer ? new Uint8Array(view) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  const codes = (text) => Array.from(text, (c) => c.codePointAt(0));
  const enc = new TextEncoder();
  const urlParts = (u) => ({
    href: u.href, origin: u.origin, protocol: u.protocol, username: u.username, password: u.password, host: u.host,
    hostname: u.hostname, port: u.port, pathname: u.pathname, search: u.search, hash: u.hash,
  });
  const parse = (input, base) => thrown(() => urlParts(base === undefined ? new URL(input) : new URL(input, base)));
  const cases = [];
  const add = (name, fn) => cases.push([name, fn]);

  // -- TextEncoder ---------------------------------------------------------------------
  add("encoder.basic", () => bytes(enc.encode("héllo €𝄞")));
  add("encoder.lone-surrogates", () => [bytes(enc.encode("a\ud800b")), bytes(enc.encode("\udc00")), bytes(enc.encode("\ud83d"))]);
  add("encoder.reversed-pair", () => bytes(enc.encode("\udc00\ud800")));
  add("encoder.nothing", () => [bytes(enc.encode()), bytes(enc.encode(undefined)), bytes(enc.encode(null)), bytes(enc.encode(12))]);
  add("encoder.encoding", () => [enc.encoding, Object.prototype.toString.call(enc)]);
  add("encoder.encodeInto", () => {
    const out = [];
    for (const [text, size] of [["abc", 2], ["€€", 4], ["𝄞x", 3], ["𝄞x", 4], ["a\ud800", 4], ["", 0], ["héllo", 10]]) {
      const dest = new Uint8Array(size);
      const r = enc.encodeInto(text, dest);
      out.push([r.read, r.written, bytes(dest)]);
    }
    return out;
  });
  add("encoder.encodeInto-bad-dest", () => thrown(() => enc.encodeInto("a", [])));

  // -- TextDecoder ---------------------------------------------------------------------
  const dec = (list, options, decodeOptions) => thrown(() => codes(new TextDecoder("utf-8", options).decode(new Uint8Array(list), decodeOptions)));
  add("decoder.basic", () => dec([0x68, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9d, 0x84, 0x9e]));
  add("decoder.invalid-replaced", () => [
    dec([0xff]), dec([0xc0, 0x80]), dec([0xe0, 0x80, 0x80]), dec([0xed, 0xa0, 0x80]), dec([0xf4, 0x90, 0x80, 0x80]),
    dec([0xf0, 0x9f, 0x98]), dec([0x61, 0xe2, 0x82]), dec([0xe2, 0x28, 0xa1]), dec([0xf8, 0x88, 0x80, 0x80, 0x80]),
    dec([0xc3]), dec([0x80, 0x80]), dec([0xf0, 0x80, 0x80, 0x62]), dec([0xef, 0xbf, 0xbd]),
  ]);
  add("decoder.fatal", () => [
    dec([0xff], { fatal: true }), dec([0xc3], { fatal: true }), dec([0xed, 0xa0, 0x80], { fatal: true }),
    dec([0xef, 0xbf, 0xbd], { fatal: true }), dec([0x61, 0xef, 0xbf, 0xbd, 0x80], { fatal: true }), dec([0x61], { fatal: true }),
  ]);
  add("decoder.bom", () => [
    dec([0xef, 0xbb, 0xbf, 0x61]), dec([0xef, 0xbb, 0xbf, 0x61], { ignoreBOM: true }),
    dec([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, 0x61]), dec([0x61, 0xef, 0xbb, 0xbf]), dec([0xef, 0xbb, 0xbf]),
    dec([0xef, 0xbb]),
  ]);
  add("decoder.streaming", () => {
    const run = (chunks, options) => {
      const d = new TextDecoder("utf-8", options);
      const out = [];
      try {
        for (const c of chunks) out.push(codes(d.decode(new Uint8Array(c), { stream: true })));
        out.push(codes(d.decode()));
      } catch (e) { out.push(e.name); }
      return out;
    };
    return [
      run([[0xe2], [0x82], [0xac]]), run([[0xf0, 0x9d], [0x84, 0x9e, 0x61]]), run([[0xef, 0xbb], [0xbf, 0x61], [0xef, 0xbb, 0xbf]]),
      run([[0xe2, 0x82]]), run([[0xe0, 0x80]]), run([[0xe2], [0x61]]), run([[0xc3], [0xa9]], { fatal: true }),
      run([[0xc3], []], { fatal: true }), run([[0xef, 0xbb, 0xbf], [0xef, 0xbb, 0xbf]]), run([[0xef], [0xbb], [0xbf], [0x62]], { ignoreBOM: true }),
    ];
  });
  add("decoder.reuse-after-flush", () => {
    const d = new TextDecoder();
    return [codes(d.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]))), codes(d.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x62])))];
  });
  add("decoder.inputs", () => {
    const buf = new Uint8Array([0x61, 0x62, 0x63, 0x64]).buffer;
    const d = new TextDecoder();
    return [d.decode(buf), d.decode(new DataView(buf, 1, 2)), d.decode(new Uint16Array(buf, 2, 1)), d.decode(), d.decode(undefined),
      thrown(() => d.decode("abc")), thrown(() => d.decode([97])), thrown(() => d.decode(null))];
  });
  add("decoder.labels", () => ["utf-8", "UTF8", " unicode-1-1-utf-8 ", "utf8\n"].map((l) => new TextDecoder(l).encoding)
    .concat([thrown(() => new TextDecoder("nope")), new TextDecoder().fatal, new TextDecoder().ignoreBOM, new TextDecoder(undefined, { fatal: 1 }).fatal]));

  // -- atob / btoa ---------------------------------------------------------------------
  const a2b = (s) => thrownMessage(() => codes(atob(s)));
  add("atob.valid", () => ["", "YQ==", "YQ", "YWI=", "YWI", "YWJj", " Y W\tJ\nj\f\r", "/+//", "YR==", "AAAA"].map(a2b));
  add("atob.invalid", () => ["Y", "YQ=", "YQ===", "Y===", "YQ==YQ==", "Y=Q=", "YQ=a", "-_", "YQ\u00a0", "\u0100", "Y\vQ", "====", "=", "a=b="].map(a2b));
  add("atob.coercion", () => [a2b(undefined), a2b(null), a2b(1234), thrownMessage(() => atob())]);
  add("btoa.valid", () => ["", "a", "ab", "abc", "\u00ff\u00fe\u0080", "\0", "hello world"].map((s) => thrownMessage(() => btoa(s))));
  add("btoa.invalid", () => ["\u0100", "€", "a\ud800", "😀"].map((s) => thrownMessage(() => btoa(s))).concat([thrownMessage(() => btoa()), btoa(null), btoa(undefined), btoa(12)]));

  // -- URL -------------------------------------------------------------------------------
  add("url.basic", () => parse("https://user:pa ss@EXAMPLE.com:443/a/./b/../c?q=1 2#frag ment"));
  add("url.ports", () => ["http://h:80/", "http://h:8080/", "https://h:443", "ftp://h:21/", "ws://h:80", "wss://h:443", "foo://h:80/", "http://h:65536/", "http://h:0/", "http://h:/"].map((s) => parse(s)));
  add("url.ipv4", () => ["http://0x7f.1/", "http://192.168.0.257/", "http://127.1/", "http://1.2.3.4.5/", "http://0300.0250.0.1/", "http://4294967295/", "http://4294967296/", "http://1.2.3.09/", "http://[::1]:8080/"].map((s) => parse(s)));
  add("url.ipv6", () => ["http://[::ffff:192.168.0.1]/", "http://[2001:DB8::0:1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::1/", "http://[1:2:3:4:5:6:7:8:9]/", "http://[::127.0.0.1]/", "http://[1::1::1]/"].map((s) => parse(s)));
  add("url.idna", () => ["http://münchen.de/", "http://xn--mnchen-3ya.de/", "http://ÉXAMPLE.com/", "http://faß.de/", "http://例え.テスト/", "http://a\u00adb.com/", "http://xn--a.com/", "http://☃.net/", "http://%41.com/", "http://a..b/", "http://ex%00ample/"].map((s) => parse(s)));
  add("url.percent", () => ["http://h/a b/ü/%zz/%2F?q=ü&x=%20 y#ü h", "http://h/\u{1F600}", "http://h/?'\"<>`", "http://h/#'\"<>`", "foo:/a b/ü?ü#ü", "http://h/%2e%2E/x", "http://h/a/%2e./b"].map((s) => parse(s)));
  add("url.relative", () => [["../d;p?q", "http://a/b/c/d;p?q"], ["g", "http://a/b/c/d;p?q"], ["//g", "http://a/b/c/d;p?q"], ["?y", "http://a/b/c/d;p?q"], ["#s", "http://a/b/c/d;p?q"], ["../../../g", "http://a/b/c/d;p?q"], ["/./g", "http://a/b/c/d;p?q"], ["g?y/./x", "http://a/b/c/d;p?q"], ["http:g", "http://a/b/c/d;p?q"], ["\\\\x\\y", "http://a/b"], ["", "http://a/b?c#d"], ["x", "mailto:a@b"], ["x", "file:///a/b"]].map(([i, b]) => parse(i, b)));
  add("url.special", () => ["file:///C:/x/../y", "file://host/share", "file:///a/b/../../..", "HTTP://H/", "http:/x", "http:\\\\h\\p", "  http://h/  ", "http://h/\t\nx", "javascript:alert(1)", "data:text/plain,hi there", "mailto:User@Example.COM", "blob:https://a.b/uuid", "urn:isbn:0451450523", "non-special://host/p", "non-special:/p//q", "sc://ñ.com/"].map((s) => parse(s)));
  add("url.invalid", () => ["", "http://", "http://a b/", "http://[::1", "//x", "a", "http://exa mple.com", "https://:443", "http://a:b@/", "http://%ff/", "http://ab%zz/"].map((s) => thrownMessage(() => new URL(s).href)).map((r) => r.error ? { error: r.error, message: r.message } : r));
  add("url.canParse", () => [URL.canParse("http://x"), URL.canParse("nope"), URL.canParse("/p", "http://x"), URL.canParse("http://[")]);
  add("url.setters", () => {
    const u = new URL("http://user@h.com:8080/p?q#h");
    const out = [];
    u.protocol = "https"; out.push(u.href);
    u.protocol = "foo"; out.push(u.href);
    u.port = "443"; out.push(u.href);
    u.port = "99999"; out.push(u.href);
    u.hostname = "ÜBER.example"; out.push(u.href);
    u.pathname = "/a b/../c"; out.push(u.href);
    u.search = "x=1 2"; out.push(u.href);
    u.hash = ""; out.push(u.href);
    u.username = "a:b"; out.push(u.href);
    u.password = "p@ss"; out.push(u.href);
    u.href = "mailto:x@y"; out.push(u.href);
    out.push(thrown(() => { u.href = "not a url"; }));
    return out;
  });
  add("url.toJSON-toString", () => {
    const u = new URL("http://h/?a=1");
    return [u.toString(), u.toJSON(), JSON.stringify({ u }), String(u), Object.prototype.toString.call(u)];
  });
  add("url.searchParams-live", () => {
    const u = new URL("http://h/?a=1&b=2&a=3");
    const p = u.searchParams;
    p.append("c", "x y&z");
    p.delete("b");
    const after = u.href;
    u.search = "?z=9";
    return [after, p.toString(), p.get("z"), u.searchParams === p];
  });

  // -- URLSearchParams -------------------------------------------------------------------
  add("params.parse", () => {
    const p = new URLSearchParams("?a=1&a=2&b=%20x+y&c&=d&e=%zz&f=%E2%82%AC&&g==h");
    return [[...p], p.getAll("a"), p.get("nope"), p.has("c"), p.size, p.toString()];
  });
  add("params.init", () => [
    new URLSearchParams({ a: "1", b: "x y" }).toString(),
    new URLSearchParams([["a", "1"], ["a", "2"]]).toString(),
    new URLSearchParams(new Map([["m", "1"]])).toString(),
    new URLSearchParams(new URLSearchParams("q=1")).toString(),
    thrown(() => new URLSearchParams([["a"]])),
    new URLSearchParams("").toString(), new URLSearchParams().size,
  ]);
  add("params.serialize", () => {
    const p = new URLSearchParams();
    p.append("k y", "a+b c/~*-._!'()é€\ud800");
    p.append("", "");
    return p.toString();
  });
  add("params.sort", () => {
    const p = new URLSearchParams("z=1&a=2&é=3&A=4&a=1&\uD83D\uDE00=5&\uFFFD=6");
    p.sort();
    return [...p.keys()];
  });
  add("params.mutation", () => {
    const p = new URLSearchParams("a=1&b=2&a=3&c=4");
    p.set("a", "x");
    p.delete("c", "5");
    const one = p.toString();
    p.delete("c", "4");
    return [one, p.toString(), p.has("b", "2"), p.has("b", "3"), [...p.entries()], [...p.values()]];
  });
  add("params.forEach", () => {
    const out = [];
    new URLSearchParams("a=1&b=2").forEach((v, k, self) => out.push([k, v, self instanceof URLSearchParams]));
    return out;
  });

  // -- structuredClone --------------------------------------------------------------------
  add("clone.collections", () => {
    const m = new Map([[1, { a: [1, 2] }], ["k", new Set([1, "x"])]]);
    const c = structuredClone(m);
    return [c instanceof Map, c !== m, [...c.keys()], c.get(1).a, [...c.get("k")]];
  });
  add("clone.date-regexp", () => {
    const r = /a+b/gi;
    r.lastIndex = 3;
    const c = structuredClone({ d: new Date(86400000), r });
    return [c.d instanceof Date, c.d.toISOString(), c.r instanceof RegExp, c.r.source, c.r.flags, c.r.lastIndex];
  });
  add("clone.cycles", () => {
    const o = { name: "root", list: [] };
    o.self = o;
    o.list.push(o, o.list);
    const c = structuredClone(o);
    return [c !== o, c.self === c, c.list[0] === c, c.list[1] === c.list];
  });
  add("clone.typed-arrays", () => {
    const buf = new ArrayBuffer(8);
    const u8 = new Uint8Array(buf);
    u8.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const c = structuredClone({ a: new Uint16Array(buf, 2, 2), b: u8, dv: new DataView(buf, 4), big: new BigInt64Array([-1n]) });
    return [c.a instanceof Uint16Array, Array.from(c.a), c.a.buffer === c.b.buffer, c.dv.getUint8(0), c.b.byteLength, c.big[0].toString()];
  });
  add("clone.primitives", () => {
    const c = structuredClone([1, -0, NaN, Infinity, "s", true, null, undefined, 10n, new Number(3), new String("x"), new Boolean(false)]);
    return [Object.is(c[1], -0), Number.isNaN(c[2]), c[3], c[7] === undefined, typeof c[8], c[8].toString(), typeof c[9], c[9].valueOf(), typeof c[10], typeof c[11]];
  });
  add("clone.errors-objects", () => {
    const e = structuredClone(new RangeError("boom"));
    class K { constructor() { this.x = 1; } m() {} }
    const k = structuredClone(new K());
    const g = structuredClone({ get v() { return 5; } });
    const s = structuredClone({ [Symbol("s")]: 1, a: 1 });
    return [e instanceof RangeError, e.message, e.name, Object.getPrototypeOf(k) === Object.prototype, k.x, "m" in k, g.v, Object.getOwnPropertySymbols(s).length];
  });
  add("clone.uncloneable", () => [
    thrownMessage(() => structuredClone(() => 1)), thrown(() => structuredClone({ f() {} })), thrown(() => structuredClone(Symbol("x"))),
    thrown(() => structuredClone(new WeakMap())), thrown(() => structuredClone(Promise.resolve())), thrownMessage(() => structuredClone()),
    thrown(() => structuredClone({ get bad() { throw new TypeError("getter"); } })),
  ]);

  // -- crypto.subtle: digest and HMAC (known vectors) ---------------------------------
  const ascii = (s) => enc.encode(s);
  add("digest.vectors", async () => {
    const out = [];
    for (const alg of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
      for (const msg of ["", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "a".repeat(1000)]) {
        out.push(hex(await crypto.subtle.digest(alg, ascii(msg))));
      }
    }
    return out;
  });
  add("digest.inputs", async () => [
    hex(await crypto.subtle.digest({ name: "sha-256" }, new Uint8Array([1, 2, 3]).buffer)),
    hex(await crypto.subtle.digest("SHA-256", new DataView(new Uint8Array([0, 1, 2, 3, 4]).buffer, 1, 3))),
    hex(await crypto.subtle.digest("SHA-256", new Uint16Array([0x0201, 0x0003]).subarray(0, 1))),
    await rejected(() => crypto.subtle.digest("MD5", ascii("x"))),
    await rejected(() => crypto.subtle.digest("SHA-256", "text")),
    (await crypto.subtle.digest("SHA-256", ascii(""))) instanceof ArrayBuffer,
  ]);
  add("hmac.vectors", async () => {
    // RFC 4231 test cases 1, 2 and 6.
    const vectors = [
      [new Uint8Array(20).fill(0x0b), ascii("Hi There")],
      [ascii("Jefe"), ascii("what do ya want for nothing?")],
      [new Uint8Array(131).fill(0xaa), ascii("Test Using Larger Than Block-Size Key - Hash Key First")],
    ];
    const out = [];
    for (const hash of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
      for (const [keyBytes, data] of vectors) {
        const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash }, false, ["sign", "verify"]);
        const sig = await crypto.subtle.sign("HMAC", key, data);
        out.push(hex(sig), await crypto.subtle.verify("HMAC", key, sig, data), await crypto.subtle.verify({ name: "HMAC" }, key, new Uint8Array(sig.byteLength), data));
      }
    }
    return out;
  });
  add("hmac.key", async () => {
    const key = await crypto.subtle.importKey("raw", ascii("secret"), { name: "HMAC", hash: { name: "SHA-256" } }, true, ["verify", "sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", key);
    const again = await crypto.subtle.importKey("jwk", jwk, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return [key.type, key.extractable, key.algorithm, key.usages.slice().sort(), Object.prototype.toString.call(key), key instanceof CryptoKey,
      { ...jwk, key_ops: jwk.key_ops.slice().sort() }, hex(await crypto.subtle.exportKey("raw", key)), again.extractable, again.algorithm,
      // Node 20 names this error "InvalidAccessException" (the spec: InvalidAccessError).
      await crypto.subtle.exportKey("raw", again).then(() => "exported", (e) => e instanceof DOMException), thrown(() => new CryptoKey())];
  });
  add("hmac.errors", async () => {
    const key = await crypto.subtle.importKey("raw", ascii("k"), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    return [
      await rejected(() => crypto.subtle.sign("HMAC", key, ascii("x"))),
      await rejected(() => crypto.subtle.importKey("raw", ascii("k"), { name: "HMAC", hash: "SHA-256" }, false, ["encrypt"])),
      await rejected(() => crypto.subtle.importKey("raw", ascii("k"), { name: "HMAC", hash: "MD5" }, false, ["sign"])),
      await rejected(() => crypto.subtle.importKey("raw", ascii("k"), { name: "HMAC", hash: "SHA-256" }, false, [])),
      await rejected(() => crypto.subtle.importKey("raw", new Uint8Array(0), { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
      await rejected(() => crypto.subtle.importKey("raw", ascii("k"), { name: "NOPE" }, false, ["sign"])),
      await rejected(() => crypto.subtle.importKey("jwk", { kty: "RSA" }, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])),
      await rejected(() => crypto.subtle.sign("HMAC", {}, ascii("x"))),
    ];
  });
  add("hmac.generateKey", async () => {
    const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-512" }, true, ["sign"]);
    const raw = await crypto.subtle.exportKey("raw", key);
    return [key.algorithm, raw.byteLength];
  });

  // -- crypto randomness: properties only ------------------------------------------------
  add("random.kinds", () => [
    Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array,
    Float32Array, Float64Array, DataView,
  ].map((T) => thrown(() => { const a = T === DataView ? new DataView(new ArrayBuffer(8)) : new T(4); return crypto.getRandomValues(a) === a; })));
  add("random.quota", () => [thrown(() => crypto.getRandomValues(new Uint8Array(65536)).length), thrownMessage(() => crypto.getRandomValues(new Uint8Array(65537))),
    thrown(() => crypto.getRandomValues(new Uint32Array(16385))), thrown(() => crypto.getRandomValues([1, 2])), thrown(() => crypto.getRandomValues(new Uint8Array(0)).length)]);
  add("random.uuid-format", () => {
    const ids = Array.from({ length: 200 }, () => crypto.randomUUID());
    return [ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)), new Set(ids).size];
  });

  // -- DOMException ----------------------------------------------------------------------
  add("domexception.basics", () => {
    const e = new DOMException("msg", "AbortError");
    const d = new DOMException();
    const n = new DOMException("m", { name: "DataCloneError", cause: 7 });
    return [e.name, e.message, e.code, e instanceof Error, e instanceof DOMException, Object.prototype.toString.call(e), String(e),
      d.name, d.message, d.code, n.name, n.code, n.cause, Object.keys(e), typeof e.stack,
      DOMException.ABORT_ERR, DOMException.prototype.DATA_CLONE_ERR, new DOMException("x", "Custom").code,
      Object.getPrototypeOf(DOMException.prototype) === Error.prototype, thrown(() => DOMException.prototype.name)];
  });
  add("domexception.codes", () => ["IndexSizeError", "HierarchyRequestError", "WrongDocumentError", "InvalidCharacterError", "NoModificationAllowedError",
    "NotFoundError", "NotSupportedError", "InvalidStateError", "SyntaxError", "InvalidModificationError", "NamespaceError", "InvalidAccessError",
    "TypeMismatchError", "SecurityError", "NetworkError", "AbortError", "URLMismatchError", "QuotaExceededError", "TimeoutError",
    "InvalidNodeTypeError", "DataCloneError", "EncodingError", "NotReadableError", "OperationError", "toString", "constructor"].map((n) => new DOMException("", n).code));

  // -- Event / EventTarget ----------------------------------------------------------------
  add("event.basics", () => {
    const e = new Event("ping", { cancelable: true, bubbles: true });
    const plain = new Event("x");
    return [e.type, e.bubbles, e.cancelable, e.composed, e.defaultPrevented, e.eventPhase, e.target, e.isTrusted, e.returnValue,
      plain.cancelable, Event.AT_TARGET, Object.prototype.toString.call(e), thrown(() => new Event()), typeof e.timeStamp];
  });
  add("eventtarget.order-once-remove", () => {
    const t = new EventTarget();
    const log = [];
    const a = () => log.push("a");
    const b = { handleEvent(ev) { log.push("b:" + (this === b) + ":" + ev.type); } };
    const c = () => { log.push("c"); t.removeEventListener("x", d); };
    const d = () => log.push("d");
    t.addEventListener("x", a);
    t.addEventListener("x", a);  // duplicate: ignored
    t.addEventListener("x", a, true);  // other capture flag: a second listener
    t.addEventListener("x", b, { once: true });
    t.addEventListener("x", c);
    t.addEventListener("x", d);
    t.addEventListener("x", null);
    t.dispatchEvent(new Event("x"));
    t.dispatchEvent(new Event("x"));
    t.removeEventListener("x", a, { capture: true });
    t.dispatchEvent(new Event("x"));
    return log;
  });
  add("eventtarget.dispatch", () => {
    const t = new EventTarget();
    const log = [];
    t.addEventListener("x", (ev) => { log.push([ev.target === t, ev.currentTarget === t, ev.eventPhase]); ev.preventDefault(); ev.stopImmediatePropagation(); });
    t.addEventListener("x", () => log.push("not reached"));
    const ev = new Event("x", { cancelable: true });
    const notCancelled = t.dispatchEvent(ev);
    const second = t.dispatchEvent(new Event("x"));
    return [notCancelled, second, ev.defaultPrevented, ev.eventPhase, ev.currentTarget, ev.target === t, log,
      thrown(() => t.dispatchEvent({ type: "x" })), thrown(() => { t.addEventListener("y", (e2) => t.dispatchEvent(e2)); t.dispatchEvent(new Event("y")); return "ok"; })];
  });
  add("eventtarget.listener-throws", () => {
    const t = new EventTarget();
    const log = [];
    t.addEventListener("x", () => { throw new Error("listener"); });
    t.addEventListener("x", () => log.push("second still runs"));
    const r = thrown(() => t.dispatchEvent(new Event("x")));
    return [r, log];
  });
  add("eventtarget.signal", () => {
    const t = new EventTarget();
    const ac = new AbortController();
    const log = [];
    t.addEventListener("x", () => log.push("x"), { signal: ac.signal });
    t.dispatchEvent(new Event("x"));
    ac.abort();
    t.dispatchEvent(new Event("x"));
    t.addEventListener("x", () => log.push("never"), { signal: ac.signal });
    t.dispatchEvent(new Event("x"));
    return log;
  });

  // -- AbortController / AbortSignal ------------------------------------------------------
  add("abort.basics", () => {
    const ac = new AbortController();
    const s = ac.signal;
    const log = [];
    s.addEventListener("abort", (ev) => log.push(["listener", ev.type, s.aborted, ev.target === s]));
    s.onabort = () => log.push("onabort");
    const before = [s.aborted, s.reason];
    ac.abort();
    ac.abort("again");
    return [before, s.aborted, s.reason instanceof DOMException, s.reason.name, s.reason.message, s.reason.code, log,
      thrown(() => s.throwIfAborted()), thrown(() => new AbortSignal()), Object.prototype.toString.call(s), s instanceof EventTarget];
  });
  add("abort.reasons", () => {
    const ac = new AbortController();
    ac.abort({ custom: 1 });
    const pre = AbortSignal.abort();
    const withReason = AbortSignal.abort(42);
    let thrownReason;
    try { withReason.throwIfAborted(); } catch (e) { thrownReason = e; }
    return [ac.signal.reason, pre.aborted, pre.reason.name, withReason.reason, thrownReason];
  });
  add("abort.any", () => {
    const a = new AbortController(), b = new AbortController();
    const any = AbortSignal.any([a.signal, b.signal]);
    const log = [];
    a.signal.addEventListener("abort", () => log.push("a"));
    any.addEventListener("abort", () => log.push("any:" + any.reason));
    b.abort("B");
    a.abort("A");
    const already = AbortSignal.any([AbortSignal.abort("early"), new AbortController().signal]);
    return [any.aborted, any.reason, log, already.aborted, already.reason, AbortSignal.any([]).aborted];
  });
  add("abort.timeout", async () => {
    const s = AbortSignal.timeout(5);
    const before = s.aborted;
    const reason = await new Promise((resolve) => s.addEventListener("abort", () => resolve(s.reason)));
    return [before, s.aborted, reason.name, reason.message, reason.code, thrown(() => AbortSignal.timeout(-1))];
  });

  // -- timers: ordering (what a plugin can observe) ---------------------------------------
  // Only orders that no scheduling delay can change: timers due at different times are
  // compared only when set together (their due times share one origin); a nested timer
  // or an interval is compared only with what it alone determines.
  add("timers.order", async () => {
    const log = [];
    await new Promise((done) => {
      setTimeout(() => log.push("t10"), 10);
      setTimeout(() => log.push("t0"));
      setTimeout(() => log.push("t1"), 1);
      setTimeout((x, y) => log.push("args:" + x + y), 0, "a", "b");
      const cleared = setTimeout(() => log.push("cleared"), 0);
      clearTimeout(cleared);
      clearTimeout(123456);
      clearTimeout(undefined);
      Promise.resolve().then(() => log.push("microtask"));
      setTimeout(done, 30);
    });
    return log;
  });
  add("timers.nested", async () => {
    const log = [];
    await new Promise((done) => {
      setTimeout(() => {
        log.push("outer");
        setTimeout(() => { log.push("nested"); done(); }, 0);
        Promise.resolve().then(() => log.push("micro-in-timer"));
      }, 2);
    });
    return log;
  });
  add("timers.interval", async () => {
    const log = [];
    await new Promise((done) => {
      let n = 0;
      const iv = setInterval(() => {
        log.push("iv" + (++n));
        if (n === 3) { clearInterval(iv); setTimeout(done, 20); }
      }, 4);
    });
    return log;
  });
  add("timers.ids", () => {
    const a = setTimeout(() => {}, 1000), b = setInterval(() => {}, 1000);
    clearTimeout(a);
    clearInterval(b);
    return [typeof a === typeof b, a !== b, thrown(() => setTimeout("code", 1))];
  });

  // -- performance, queueMicrotask, console ------------------------------------------------
  add("performance.now", () => {
    const a = performance.now(), b = performance.now();
    return [typeof a, a >= 0, b >= a, typeof performance.timeOrigin, Math.abs(performance.timeOrigin + a - Date.now()) < 1000];
  });
  add("queueMicrotask.order", async () => {
    const log = [];
    queueMicrotask(() => log.push(1));
    Promise.resolve().then(() => log.push(2));
    queueMicrotask(() => log.push(3));
    await null;
    await null;
    return [log, thrown(() => queueMicrotask(1))];
  });
  add("console.methods", () => ["log", "info", "debug", "warn", "error"].map((m) => typeof console[m]));

  return cases;
})();
