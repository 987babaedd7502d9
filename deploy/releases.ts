import { readReleaseState } from "../lib/release";
import type { ReleaseHistoryEntry } from "../lib/releases-page";
import type { LedgerEntry } from "../components/release-record";
import { FileCommit, fileHistory } from "./git";
import { ROLLBACK_TRAILER, STAGE_TRAILER, plainText, revertsIn, trailers } from "./rollback-commit";

function tagsOf(text: string): { frontend: string; backend: string } {
  try {
    return readReleaseState(text, "release file").tags;
  } catch {
    return { frontend: "?", backend: "?" };
  }
}

/**
 * The release history, newest first: each commit of the release file (image automation's and
 * people's releases, the deploy's rollbacks with their reasons), with the gate timings the stack's
 * ledger holds for the pairs it promoted.
 */
export function releaseHistory(commits: readonly FileCommit[], ledger: readonly LedgerEntry[]): ReleaseHistoryEntry[] {
  const interruptions = ledger
    .filter((l) => l.result === "interrupted" && l.failed)
    .map((l): ReleaseHistoryEntry => ({ sha: "", at: l.at, author: "", kind: "interrupted", frontend: l.failed!.frontend, backend: l.failed!.backend, reason: l.reason }));
  // Each release commit a rollback names, by the rollback commit that reverted it.
  const revertedBy = new Map<string, string>();
  for (const c of commits) {
    if (ROLLBACK_TRAILER in trailers(c.body)) {
      for (const sha of revertsIn(c.body)) {
        const hit = commits.find((r) => r.sha.startsWith(sha));
        if (hit && !revertedBy.has(hit.sha)) {
          revertedBy.set(hit.sha, c.sha);
        }
      }
    }
  }
  const released = commits.map((c): ReleaseHistoryEntry => {
    const tags = tagsOf(c.text);
    const marks = trailers(c.body);
    const isRollback = ROLLBACK_TRAILER in marks;
    const promoted = [...ledger].reverse().find((l) => l.result === "promoted" && l.frontend.startsWith(`${tags.frontend}@`) && l.backend.startsWith(`${tags.backend}@`));
    // The stage from its trailer, and the first line of the commit's Reason block.
    const why = /^Reason:\n {2}(.*)$/m.exec(c.body)?.[1];
    const reason = isRollback ? [marks[STAGE_TRAILER], why].filter(Boolean).join(": ") : undefined;
    return {
      sha: c.sha,
      at: c.at,
      author: c.author,
      kind: isRollback ? "rollback" : "release",
      ...tags,
      ...(reason ? { reason } : {}),
      ...(isRollback && revertsIn(c.body).length > 0 ? { reverts: revertsIn(c.body) } : {}),
      ...(revertedBy.has(c.sha) ? { revertedBy: revertedBy.get(c.sha) } : {}),
      ...(promoted && !isRollback ? { gates: promoted.gates, promotedAt: promoted.at, ...(promoted.unverified?.length ? { unverified: promoted.unverified } : {}) } : {}),
    };
  });
  // Newest first, as git log lists the commits.
  return [...released, ...interruptions].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}

/** The history as a table for people. */
export function formatHistory(entries: readonly ReleaseHistoryEntry[]): string {
  const rows = entries.map((e) => [
    e.at.replace("T", " ").slice(0, 19),
    e.sha ? e.sha.slice(0, 10) : "-",
    e.kind,
    e.frontend,
    e.backend,
    e.gates ? `${(e.gates.frontendMs / 1000).toFixed(1)}s / ${(e.gates.backendMs / 1000).toFixed(1)}s${e.unverified?.length ? ` (${e.unverified.join(", ")}: version not checked)` : ""}` : e.kind === "release" ? "not promoted" : "",
    e.kind === "release"
      ? `${e.author}${e.revertedBy ? `; rolled back by ${e.revertedBy.slice(0, 10)}` : ""}`
      : `${e.reason ?? ""}${e.reverts?.length ? ` (reverts ${e.reverts.map((r) => r.slice(0, 10)).join(", ")})` : ""}`,
  ]);
  const head = ["when (UTC)", "commit", "kind", "frontend", "backend", "gates", "by / why"];
  // What commits carry is anyone's text: no control character or escape reaches the terminal.
  for (const r of rows) {
    r.forEach((cell, i) => (r[i] = plainText(cell).replace(/[\n\t]+/g, " ")));
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

export { fileHistory };
export type { ReleaseHistoryEntry };
