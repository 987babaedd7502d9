import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { escapeHtml, renderReleasesPage } from "../../lib/releases-page";
import { SAMPLE_HISTORY } from "../support/release-entries";

describe("the releases page", () => {
  const page = renderReleasesPage("production", SAMPLE_HISTORY, "2026-12-07T11:00:00.000Z");

  it("has a timeline row per entry, newest first, each with its kind", () => {
    const kinds = [...page.matchAll(/<tr class="[^"]*" data-kind="(\w+)">/g)].map((m) => m[1]);
    assert.deepEqual(kinds, ["rollback", "release", "interrupted", "release"]);
    assert.match(page, /4 entries, 1 promoted, 2 rolled back or interrupted/);
  });

  it("charts each promotion's gate times on one scale, the longest the full width", () => {
    assert.match(page, /aria-label="frontend gate 4\.2 s, backend gate 1\.2 s"/);
    assert.match(page, /<rect class="frontend" x="0" y="1" height="10" width="160">/);
    assert.match(page, /<rect class="backend" x="0" y="14" height="10" width="46">/);
    assert.equal((page.match(/<svg /g) ?? []).length, 1, "only the promoted release has a chart");
  });

  it("lists the failed pairs with their reasons and commits", () => {
    const failed = page.slice(page.indexOf("<h2>Failed pairs</h2>"));
    assert.match(failed, /main-aaaaaaa-1765100000<\/span>: rolled back at 2026-12-07T10:03:00\.000Z \(backend gate: &lt;script&gt;/);
    assert.match(failed, /commit <span class="mono">c3c3c3c3c3c3<\/span>/);
    assert.match(failed, /interrupted by the platform at 2026-12-07T10:01:00\.000Z \(the platform failed \(registry\)\)/);
  });

  it("escapes what commits carry and fetches nothing: no script, no external source", () => {
    assert.doesNotMatch(page, /<script|<img/i);
    assert.match(page, /fluxcdbot &lt;img src=x onerror=alert\(2\)&gt;/);
    // No tag with a source or a link, no style that loads one, no address anywhere.
    assert.doesNotMatch(page, /<[a-z]+[^>]*\s(src|href|on\w+)=|url\(|@import|https?:\/\//i);
    assert.match(page, /Content-Security-Policy" content="default-src 'none'/);
    assert.equal(escapeHtml(`a&b<c>"d'\u0007\u001b[31m`), "a&amp;b&lt;c&gt;&quot;d&#39;[31m");
  });

  it("says there are none when nothing failed", () => {
    assert.match(renderReleasesPage("s", [SAMPLE_HISTORY[3]], "t"), /<h2>Failed pairs<\/h2>\n<p>None\.<\/p>/);
  });
});
