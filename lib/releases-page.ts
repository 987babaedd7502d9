/*
 * The release history as one self-contained HTML page (`npm run releases -- --html FILE`): a
 * timeline of releases, rollbacks and interruptions, each promotion's gate times as a small bar
 * chart, and the failed pairs with their reasons and commits. Nothing is fetched: the styles are
 * inline, the charts are inline SVG, there is no script. Every text a commit carries is escaped.
 */

/** One release of the history: a commit of the release file, and what the stack recorded of it. */
export interface ReleaseHistoryEntry {
  /** The commit; empty for an interruption, which has none. */
  readonly sha: string;
  readonly at: string;
  readonly author: string;
  /** `interrupted`: the platform cut a release short (from the stack's ledger; no commit). */
  readonly kind: "release" | "rollback" | "interrupted";
  readonly frontend: string;
  readonly backend: string;
  /** For a rollback: the stage that failed and why. */
  readonly reason?: string;
  /** For a rollback: the release commits it reverts. */
  readonly reverts?: readonly string[];
  /** For a release: the rollback commit that reverted it. */
  readonly revertedBy?: string;
  /** Gate timings of the promotion the stack recorded for this pair, if it was promoted. */
  readonly gates?: { readonly frontendMs: number; readonly backendMs: number };
  /** The parts promoted without their version checked. */
  readonly unverified?: readonly string[];
  readonly promotedAt?: string;
}

/** HTML's five special characters, and every control character dropped. */
export function escapeHtml(text: string): string {
  return (
    text
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "")
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;")
  );
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1d2329; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .5em; }
p.meta { color: #5b6670; margin: 0 0 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e3e7eb; vertical-align: top; }
th { font-weight: 600; color: #5b6670; }
td.mono, span.mono { font-family: ui-monospace, monospace; font-size: .92em; }
td.mono { white-space: nowrap; }
tr.rollback td.kind { color: #a4161a; font-weight: 600; }
tr.interrupted td.kind { color: #9a6700; font-weight: 600; }
tr.release td.kind { color: #1a7f37; }
tr.reverted td { color: #8c959f; }
svg.gates { display: block; }
svg.gates rect.frontend { fill: #2f81f7; }
svg.gates rect.backend { fill: #8250df; }
svg.gates text { font: 10px system-ui, sans-serif; fill: #1d2329; }
ul.failed li { margin: .3em 0; }
.legend span { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 1em; vertical-align: middle; }
`;

/** A promotion's two gate times as bars on a common scale (`maxMs` is the page's longest). */
function gateChart(gates: { frontendMs: number; backendMs: number }, maxMs: number): string {
  const width = 160;
  const bar = (ms: number): number => Math.max(1, Math.round((ms / Math.max(maxMs, 1)) * width));
  const label = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  return (
    `<svg class="gates" width="${width + 50}" height="26" role="img" aria-label="frontend gate ${label(gates.frontendMs)}, backend gate ${label(gates.backendMs)}">` +
    `<rect class="frontend" x="0" y="1" height="10" width="${bar(gates.frontendMs)}"></rect><text x="${bar(gates.frontendMs) + 4}" y="10">${label(gates.frontendMs)}</text>` +
    `<rect class="backend" x="0" y="14" height="10" width="${bar(gates.backendMs)}"></rect><text x="${bar(gates.backendMs) + 4}" y="23">${label(gates.backendMs)}</text>` +
    `</svg>`
  );
}

function row(e: ReleaseHistoryEntry, maxMs: number): string {
  const cls = [e.kind, e.revertedBy ? "reverted" : ""].filter(Boolean).join(" ");
  const what =
    e.kind === "release"
      ? `${escapeHtml(e.author)}${e.revertedBy ? `; rolled back by <span class="mono">${escapeHtml(e.revertedBy.slice(0, 10))}</span>` : ""}`
      : `${escapeHtml(e.reason ?? "")}${e.reverts?.length ? ` (reverts <span class="mono">${e.reverts.map((r) => escapeHtml(r.slice(0, 10))).join(", ")}</span>)` : ""}`;
  const gates = e.gates
    ? `${gateChart(e.gates, maxMs)}${e.unverified?.length ? `<div>version not checked: ${escapeHtml(e.unverified.join(", "))}</div>` : ""}`
    : e.kind === "release"
      ? "not promoted"
      : "";
  return (
    `<tr class="${cls}" data-kind="${e.kind}">` +
    `<td class="mono">${escapeHtml(e.at.replace("T", " ").slice(0, 19))}</td>` +
    `<td class="mono">${e.sha ? escapeHtml(e.sha.slice(0, 10)) : "-"}</td>` +
    `<td class="kind">${e.kind}</td>` +
    `<td class="mono">${escapeHtml(e.frontend)}</td>` +
    `<td class="mono">${escapeHtml(e.backend)}</td>` +
    `<td>${gates}</td>` +
    `<td>${what}</td>` +
    `</tr>`
  );
}

/** The page: `entries` newest first, as releaseHistory returns them. */
export function renderReleasesPage(stack: string, entries: readonly ReleaseHistoryEntry[], generatedAt: string): string {
  const maxMs = Math.max(0, ...entries.flatMap((e) => (e.gates ? [e.gates.frontendMs, e.gates.backendMs] : [])));
  const failed = entries.filter((e) => e.kind !== "release");
  const promoted = entries.filter((e) => e.gates).length;
  const failedList =
    failed.length === 0
      ? "<p>None.</p>"
      : `<ul class="failed">${failed
          .map(
            (e) =>
              `<li><span class="mono">${escapeHtml(e.frontend)}</span> + <span class="mono">${escapeHtml(e.backend)}</span>: ${e.kind === "interrupted" ? "interrupted by the platform" : "rolled back"} at ${escapeHtml(e.at)}` +
              `${e.reason ? ` (${escapeHtml(e.reason)})` : ""}${e.sha ? `, commit <span class="mono">${escapeHtml(e.sha.slice(0, 12))}</span>` : ""}</li>`,
          )
          .join("")}</ul>`;
  return [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    // No fetch of any kind: nothing but what the page holds.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>Releases of stack ${escapeHtml(stack)}</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1>Releases of stack ${escapeHtml(stack)}</h1>`,
    `<p class="meta">${entries.length} entries, ${promoted} promoted, ${failed.length} rolled back or interrupted; written ${escapeHtml(generatedAt)} from git and the stack's ledger.</p>`,
    "<h2>Timeline</h2>",
    `<p class="legend">gate times:<span style="background:#2f81f7"></span>frontend<span style="background:#8250df"></span>backend</p>`,
    '<table id="timeline"><thead><tr><th>when (UTC)</th><th>commit</th><th>kind</th><th>frontend</th><th>backend</th><th>gates</th><th>by / why</th></tr></thead><tbody>',
    ...entries.map((e) => row(e, maxMs)),
    "</tbody></table>",
    "<h2>Failed pairs</h2>",
    failedList,
    "</body></html>",
    "",
  ].join("\n");
}
