// normalize-url: built on URL and URLSearchParams (parsing, punycode, percent-encoding,
// searchParams.sort()), plus structuredClone of the result to check it copies plain data.
import normalizeUrl from "normalize-url";

export default {
  normalize(url, options = {}) {
    try {
      return { ok: normalizeUrl(url, options) };
    } catch (e) {
      return { error: e.name, message: e.message };
    }
  },
  many(urls) {
    const out = {};
    for (const url of urls) out[url] = normalizeUrl(url);
    const copy = structuredClone(out);
    return { same: JSON.stringify(copy) === JSON.stringify(out) && copy !== out, out: copy };
  },
};
