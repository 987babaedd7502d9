import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { signerLines } from "../lib/allowed-signers";
import { Checkout, GitError, git } from "./git";
import { StackConfig, setting } from "./release-state";
import { plainText } from "./rollback-commit";

/*
 * Which commits a deploy may fast-forward to. The deploy runs the program and the policy pack of
 * the checkout with every stack secret, and the branch can be pushed by whoever holds Flux's
 * read-write deploy key. So a commit counts as the user's only when a trusted key signed it (git's
 * SSH signatures against `homelab:trustedSigners`), or a person fast-forwarded to it by hand;
 * anyone else may change the release file and nothing more, which is what image automation writes
 * and what the deploy parses as data, never runs.
 */

/** Who vouches for the commits a deploy fast-forwards over. */
export interface TrustPolicy {
  /** An allowed signers list (git's gpg.ssh.allowedSignersFile); unset: no key is trusted. */
  readonly signers?: string;
  /**
   * No person runs this deploy (`--watch`): commits nobody trusted may change the release file
   * alone. With a person and no signers, the person's run of the deploy vouches for the branch.
   */
  readonly unattended: boolean;
}

/** What the checkout's tree holds at the release file's path: a regular file, or why it is not. */
const REGULAR_FILE = new Set(["100644", "100755"]);

/** One commit the policy refuses, for the refusal. */
export interface UntrustedCommit {
  readonly sha: string;
  readonly subject: string;
  readonly author: string;
  /** The paths it changes beyond the release file (and the release file, when it is no longer a regular file). */
  readonly files: string[];
}

/** The commits whose signature a trusted key made, among `shas`. */
function signedByTrusted(root: string, shas: readonly string[], signers: string): Set<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-signers-"));
  const file = path.join(dir, "allowed_signers");
  fs.writeFileSync(file, `${signerLines(signers).join("\n")}\n`, { mode: 0o600 });
  try {
    return new Set(
      shas.filter((sha) => {
        try {
          // This process's own settings for the check, whatever the user's git config says.
          git(root, ["-c", "gpg.format=ssh", "-c", `gpg.ssh.allowedSignersFile=${file}`, "verify-commit", sha]);
          return true;
        } catch {
          return false;
        }
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The paths `from..to` changes that a commit nobody trusted may not: anything but the release file kept a regular file. */
export function disallowedChanges(root: string, file: string, from: string, to: string): string[] {
  const raw = git(root, ["diff", "--raw", "-r", "--no-renames", "-z", from, to]);
  // -z: ":oldmode newmode old new status\0path\0" for each change, paths never quoted.
  const fields = raw.split("\0");
  const bad: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [, newMode] = fields[i].replace(/^:/, "").split(" ");
    const changed = fields[i + 1];
    if (changed !== file || !REGULAR_FILE.has(newMode)) {
      bad.push(changed === file ? `${changed} (no longer a regular file)` : changed);
    }
  }
  return bad;
}

/**
 * Checks the commits the deploy would fast-forward over, `from..to`. The newest commit on the
 * first-parent line that a trusted key signed vouches for its tree (the signer saw it whole);
 * above it, or above `from` when none is signed, only the release file may change. Throws GitError
 * naming each commit that changes more, with its files, before anything moves.
 */
export function checkIncoming(root: string, file: string, from: string, to: string, policy: TrustPolicy): void {
  if (from === to || (!policy.signers && !policy.unattended)) {
    return;
  }
  const line = git(root, ["rev-list", "--first-parent", `${from}..${to}`]).split("\n").filter(Boolean);
  const trusted = policy.signers ? signedByTrusted(root, line, policy.signers) : new Set<string>();
  const base = line.find((sha) => trusted.has(sha)) ?? from;
  if (disallowedChanges(root, file, base, to).length === 0) {
    return;
  }
  const offenders = untrustedCommits(root, file, base, to);
  const list = offenders
    .slice(0, 5)
    .map((c) => `${c.sha.slice(0, 12)} "${c.subject}" by ${c.author}: ${c.files.slice(0, 8).join(", ")}${c.files.length > 8 ? ", …" : ""}`)
    .join("; ");
  const more = offenders.length > 5 ? ` and ${offenders.length - 5} more` : "";
  const why = policy.signers
    ? "not signed by a key of homelab:trustedSigners"
    : "and --watch runs without a person: only the release file may change unless homelab:trustedSigners lists the keys whose signed commits count";
  throw new GitError(
    `${to.slice(0, 12)} is not deployed: ${offenders.length === 1 ? "a commit changes" : `${offenders.length} commits change`} more than ${file}, ${why}: ${list}${more}. ` +
      `Nothing moved. Once a person has read them: git -C ${root} merge --ff-only ${to.slice(0, 12)}, then npm run deploy by hand`,
  );
}

/** The commits in `base..to` that change more than the release file, oldest first, for the refusal. */
function untrustedCommits(root: string, file: string, base: string, to: string): UntrustedCommit[] {
  const shas = git(root, ["rev-list", "--reverse", "--no-merges", `${base}..${to}`]).split("\n").filter(Boolean);
  const found = shas.flatMap((sha) => {
    const files = disallowedChanges(root, file, `${sha}^`, sha);
    if (files.length === 0) {
      return [];
    }
    // A subject, name or path is the pusher's to choose: no control character reaches the terminal.
    const oneLine = (t: string): string => plainText(t).replace(/[\n\t]+/g, " ");
    const [subject, author] = git(root, ["show", "-s", "--format=%s%x00%an <%ae>", sha]).trim().split("\0").map((t) => oneLine(t).slice(0, 120));
    return [{ sha, subject, author, files: files.map(oneLine) }];
  });
  // A merge alone can bring changes no single commit shows (an evil merge): name the tip then.
  return found.length > 0 ? found : [{ sha: to, subject: "(the merged result)", author: "its merges", files: disallowedChanges(root, file, base, to) }];
}

/** The vetting of a fast-forward for a stack: its trusted signers, and whether a person runs the deploy. */
export function vetIncoming(cfg: StackConfig, unattended: boolean): (co: Checkout, from: string, to: string) => void {
  const policy: TrustPolicy = { signers: setting(cfg, "trustedSigners") || undefined, unattended };
  return (co, from, to) => checkIncoming(co.root, co.file, from, to, policy);
}

/** The signers the commits a deploy makes must be signed by: with homelab:fluxVerifyCommits, Flux refuses any other head. */
export function commitSigners(cfg: StackConfig): string | undefined {
  return setting(cfg, "fluxVerifyCommits") === "true" ? setting(cfg, "trustedSigners") || undefined : undefined;
}
