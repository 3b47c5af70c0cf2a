// An ES module plugin: it imports the host API from "plugin:host" and uses web APIs
// (URL, URLSearchParams, TextEncoder, crypto.subtle, setTimeout) inside an async hook.
//  - sidebar: a template hook ({% plugin_hook "sidebar" %}) returning sanitized HTML
import { config, log } from "plugin:host";

const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async sidebar() {
    const link = new URL("/", config.site);
    link.search = new URLSearchParams({ ref: "sidebar", lang: "en" }).toString();
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(link.href));
    await pause(1);  // timers work within the call
    log(`share link ${link.href}`);
    return { html: `<p><strong>Share</strong>: <a href="${link.href}">${link.host}</a> <small>#${hex(digest).slice(0, 8)}</small></p>` };
  },
};
