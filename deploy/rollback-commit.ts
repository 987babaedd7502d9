import { RELEASE_PARTS, ReleasePart, readReleaseState, updateReleaseFile } from "../lib/release";
import { RollbackEvent } from "../lib/rollback";
import type { FileCommit } from "./git";

/**
 * Text from elsewhere (a failure's evidence, a reason typed by hand) made safe for a commit
 * message, a release file and a terminal: control characters, a NUL among them (git refuses a
 * message with one) and terminal escapes, are dropped; lines and tabs stay.
 */
export function plainText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, "");
}

/** The trailer naming the stage that failed. */
export const STAGE_TRAILER = "Homelab-Failed-Stage";

/** The stage a rollback by hand names. */
export const MANUAL_STAGE = "manual rollback";

/** The trailer that marks the deploy's own rollback commits (and carries the rollback's id). */
export const ROLLBACK_TRAILER = "Homelab-Rollback";

/** A tag pair, by part. */
export type TagPair = Readonly<Record<ReleasePart, string>>;

/** A rollback as it is committed: the event, and the images' digests where they are known. */
export interface RollbackRecord {
  readonly event: RollbackEvent & { readonly restored: TagPair; readonly stage: string };
  readonly digests?: { readonly failed?: Partial<TagPair>; readonly restored?: Partial<TagPair> };
  /** The release commits it undoes, newest first (see `revertedCommits`). */
  readonly reverts?: readonly string[];
}

const tagsAt = (c: FileCommit): TagPair | undefined => {
  try {
    return readReleaseState(c.text, "release file").tags;
  } catch {
    return undefined;
  }
};

const samePair = (a: TagPair | undefined, b: TagPair): boolean => a !== undefined && RELEASE_PARTS.every((p) => a[p] === b[p]);

/**
 * The release commits a rollback to `restored` undoes: walking the release file's history newest
 * first, every commit that changed a tag, back to the newest commit naming the restored pair.
 * None when no commit within the history names it (the link is then unknown, not guessed).
 */
export function revertedCommits(history: readonly FileCommit[], restored: TagPair): string[] {
  const undone: string[] = [];
  for (let i = 0; i < history.length; i++) {
    const tags = tagsAt(history[i]);
    if (samePair(tags, restored)) {
      return undone;
    }
    const older = history[i + 1];
    // A commit that only edits the exclusions (or cannot be read) moved no release.
    if (older === undefined || (tags !== undefined && !samePair(tagsAt(older), tags))) {
      undone.push(history[i].sha);
    }
  }
  return [];
}

const REVERTS = /^This reverts commit ([0-9a-f]{7,40})\.$/gm;

/** The commits a rollback commit's message says it reverts, in git's own wording. */
export function revertsIn(message: string): string[] {
  return [...message.matchAll(REVERTS)].map((m) => m[1]);
}

/**
 * The parts a failed stage blames: a frontend rollout or gate blames the frontend, a backend deploy
 * or gate the backend; anything else (or a rollback by hand) blames both.
 */
export function partsAtFault(stage: string): readonly ReleasePart[] {
  if (stage.startsWith("frontend")) {
    return ["frontend"];
  }
  if (stage.startsWith("backend")) {
    return ["backend"];
  }
  return RELEASE_PARTS;
}

/** The failed tags a rollback excludes: those of the parts at fault that differ from the pair it restores. */
export function failedTags(failed: TagPair, restored: TagPair, stage = ""): { image: ReleasePart; tag: string }[] {
  return partsAtFault(stage)
    .filter((p) => failed[p] !== restored[p])
    .map((p) => ({ image: p, tag: failed[p] }));
}

/**
 * The release file change of a rollback: each part that still names its failed tag goes back to
 * the restored one (a part image automation has meanwhile moved to a newer tag keeps it: that
 * release is deployed next), the failed tags are excluded, and the event is recorded.
 */
export function rollbackChange(record: RollbackRecord): (text: string) => string {
  const e = { ...record.event, reason: plainText(record.event.reason) };
  return (text) =>
    updateReleaseFile(text, {
      tags: Object.fromEntries(RELEASE_PARTS.filter((p) => readReleaseState(text, "release file").tags[p] === e.failed[p]).map((p) => [p, e.restored[p]])),
      exclude: failedTags(e.failed, e.restored, e.stage).map((f) => ({ ...f, at: e.at, reason: `${e.stage}: ${e.reason.split("\n")[0]}`.slice(0, 300) })),
      rollback: e,
    });
}

const pair = (tags: TagPair, digests?: Partial<TagPair>): string =>
  RELEASE_PARTS.map((p) => `${p} ${tags[p]}${digests?.[p] ? `@${digests[p]}` : ""}`).join(", ");

/** The commit message of a rollback: what failed, where, why, what runs again, when; trailers for tools. */
export function rollbackMessage(record: RollbackRecord): string {
  const e = { ...record.event, reason: plainText(record.event.reason) };
  const excluded = failedTags(e.failed, e.restored, e.stage);
  return [
    `Roll back to ${pair(e.restored)}`,
    "",
    e.stage === MANUAL_STAGE
      ? `Rolled back by hand from ${pair(e.failed)}.`
      : `The ${e.stage} failed for ${pair(e.failed)}; both parts run the last promoted pair again.`,
    "",
    "Reason:",
    ...e.reason.split("\n").map((l) => `  ${l}`),
    "",
    `Failed:   ${pair(e.failed, record.digests?.failed)}`,
    `Restored: ${pair(e.restored, record.digests?.restored)}`,
    `Excluded: ${excluded.length > 0 ? excluded.map((x) => `${x.image} ${x.tag}`).join(", ") : "nothing (the failed pair is the restored one)"}`,
    `At:       ${e.at}`,
    "",
    ...(record.reverts && record.reverts.length > 0 ? [...record.reverts.map((sha) => `This reverts commit ${sha}.`), ""] : []),
    `${ROLLBACK_TRAILER}: ${e.id}`,
    `${STAGE_TRAILER}: ${e.stage}`,
    "",
  ].join("\n");
}

/** Git trailers (`Key: value` lines of the last paragraph) of a commit message. */
export function trailers(message: string): Record<string, string> {
  const paragraphs = message.trim().split(/\n\s*\n/);
  const last = paragraphs[paragraphs.length - 1] ?? "";
  const out: Record<string, string> = {};
  for (const line of last.split("\n")) {
    const m = /^([A-Za-z][A-Za-z0-9-]*): (.+)$/.exec(line.trim());
    if (m) {
      out[m[1]] = m[2];
    }
  }
  return out;
}

/**
 * Replaces every secret value (and each value inside a secret JSON object) in `text` with
 * "[secret]", so no secret reaches a commit message, a log or the ledger.
 */
export function redact(text: string, secrets: readonly string[]): string {
  const values = new Set<string>();
  for (const s of secrets) {
    values.add(s);
    try {
      const parsed: unknown = JSON.parse(s);
      if (parsed && typeof parsed === "object") {
        // Inside an environment object, plain numbers and booleans (ports, counts, flags) are not
        // what is secret about it, and hiding them everywhere would garble every message.
        for (const v of Object.values(parsed as Record<string, unknown>).map(String)) {
          if (!/^(\d+|true|false)$/.test(v)) {
            values.add(v);
          }
        }
      }
    } catch {
      // not JSON
    }
  }
  let out = text;
  for (const v of [...values].filter((v) => v.length >= 4).sort((a, b) => b.length - a.length)) {
    out = out.split(v).join("[secret]");
    // Multi-line secrets (keys) also leak line by line.
    for (const line of v.split("\n").filter((l) => l.trim().length >= 16)) {
      out = out.split(line).join("[secret]");
    }
  }
  return out;
}
