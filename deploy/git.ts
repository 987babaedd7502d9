import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { publicKeyOf, signerKeys } from "../lib/allowed-signers";
import { parseScpAddress, scpToSshUrl } from "../lib/flux-install";

/** A git command that failed, with what git said. */
export class GitError extends Error {}

/** Runs git in `cwd`; throws GitError with git's own message when it fails. */
export function git(cwd: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  const r = spawnSync("git", args, {
    cwd,
    input: opts.input,
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0", ...opts.env },
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) {
    throw new GitError(`git ${args[0]}: ${r.error.message}`);
  }
  if (r.status !== 0) {
    throw new GitError(`git ${args.join(" ")}: ${(r.stderr || r.stdout).trim().split("\n").slice(-4).join("\n")}`);
  }
  return r.stdout;
}

/**
 * The repository a git URL names, without scheme, user, port or `.git`, so that
 * `ssh://git@host/me/repo.git`, `git@host:me/repo` and `https://host/me/repo` compare equal.
 */
export function repositoryKey(url: string): string {
  const value = url.trim();
  // An scp-like address is keyed as the ssh:// URL the program gives Flux for it, so the checkout's
  // origin and homelab:gitUrl agree whichever of the two spellings each one uses.
  const scp = parseScpAddress(value);
  let rest = scp ? scpToSshUrl(scp) : value;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(rest);
  if (!scheme) {
    return path.resolve(rest).replace(/\/+$/, "").replace(/\.git$/, "");
  }
  rest = rest.slice(scheme[0].length);
  const slash = rest.indexOf("/");
  const host = (slash < 0 ? rest : rest.slice(0, slash)).replace(/^[^@]*@/, "").replace(/:\d+$/, "");
  const repoPath = slash < 0 ? "" : rest.slice(slash + 1);
  return `${host.toLowerCase()}/${repoPath.replace(/^\/+/, "").replace(/\/+$/, "").replace(/\.git$/, "")}`;
}

/** A checkout of the repository Flux watches, on the branch it watches. */
export interface Checkout {
  /** The top of the working tree. */
  readonly root: string;
  /** The release file, relative to root (as git names it). */
  readonly file: string;
  readonly branch: string;
  /** The remote-tracking ref of the branch. */
  readonly upstream: string;
  /** Commits made here are signed (git's own signing set-up), for a Flux that verifies the head. */
  readonly sign?: boolean;
}

/** `keytype base64` of a public key line, its comment dropped. */
const bareKey = (line: string): string => line.trim().split(/\s+/).slice(0, 2).join(" ");

/** The public key (`keytype base64`) git's `user.signingkey` names for SSH signing, if it can be read. */
function signingPublicKey(root: string, value: string): string | undefined {
  if (value.startsWith("key::")) {
    return bareKey(value.slice(5));
  }
  const file = path.resolve(root, value.replace(/^~(?=\/)/, os.homedir()));
  const read = (f: string): string | undefined => {
    try {
      return fs.readFileSync(f, "utf8");
    } catch {
      return undefined;
    }
  };
  const text = read(file);
  if (text === undefined) {
    return undefined;
  }
  if (text.includes("PRIVATE KEY-----")) {
    const pub = read(`${file}.pub`);
    return publicKeyOf(text) ?? (pub === undefined ? undefined : bareKey(pub));
  }
  return bareKey(text);
}

/**
 * Why commits made in the checkout would not carry an SSH signature by one of `signers`
 * (allowed-signers text), or undefined when they would: git signs with gpg.format ssh and the
 * user.signingkey it is given.
 */
export function commitSigningProblem(root: string, signers: string): string | undefined {
  const get = (key: string): string => {
    try {
      return git(root, ["config", "--get", key]).trim();
    } catch {
      return "";
    }
  };
  const format = get("gpg.format");
  if (format !== "ssh") {
    return `git signs with ${format || "openpgp (gpg.format unset)"}, not ssh: git config gpg.format ssh`;
  }
  const keyValue = get("user.signingkey");
  if (!keyValue) {
    return "git's user.signingkey is unset: git config user.signingkey <your key>.pub, a key of homelab:trustedSigners";
  }
  const key = signingPublicKey(root, keyValue);
  if (key === undefined) {
    return `git's user.signingkey ${JSON.stringify(keyValue)} cannot be read`;
  }
  return signerKeys(signers).includes(key) ? undefined : `git's user.signingkey (${key}) is not one of homelab:trustedSigners`;
}

/**
 * Checks that `workDir` is a clone of `gitUrl` on `branch`, fetches the branch and fast-forwards
 * to it, so the release file read next is the one in git. Refuses (throws) a checkout whose release
 * file has changes not committed, or whose branch has commits the server does not have, and
 * whatever `vet` throws for the commits the fast-forward would bring (see commit-trust.ts). With
 * `signers` (Flux verifies the head), refuses a checkout whose git would not sign with one of
 * them, and the commits made in it are signed.
 */
export function syncCheckout(
  workDir: string,
  releaseFile: string,
  gitUrl: string,
  branch: string,
  vet: (co: Checkout, from: string, to: string) => void = () => undefined,
  signers?: string,
): Checkout {
  let root: string;
  try {
    root = git(workDir, ["rev-parse", "--show-toplevel"]).trim();
  } catch {
    throw new GitError(`${workDir} is not a git checkout: the deploy runs from a clone of homelab:gitUrl (${gitUrl})`);
  }
  const origin = (() => {
    try {
      return git(root, ["remote", "get-url", "origin"]).trim();
    } catch {
      throw new GitError(`the checkout ${root} has no remote "origin": clone ${gitUrl}`);
    }
  })();
  if (repositoryKey(origin) !== repositoryKey(gitUrl)) {
    throw new GitError(`the checkout ${root} is a clone of ${origin}, not of homelab:gitUrl ${gitUrl}`);
  }
  const current = (() => {
    try {
      return git(root, ["symbolic-ref", "--short", "HEAD"]).trim();
    } catch {
      return "(detached HEAD)";
    }
  })();
  if (current !== branch) {
    throw new GitError(`the checkout ${root} is on ${current}, not on homelab:gitBranch ${branch}: git switch ${branch}`);
  }
  const file = path.relative(root, path.resolve(workDir, releaseFile));
  if (file.startsWith("..")) {
    throw new GitError(`homelab:releaseFile ${releaseFile} is outside the checkout ${root}`);
  }
  if (git(root, ["status", "--porcelain", "--", file]).trim()) {
    throw new GitError(`${file} has changes that are not committed: a release is what git says; commit and push it, or git restore it`);
  }
  git(root, ["fetch", "--quiet", "origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`]);
  const upstream = `refs/remotes/origin/${branch}`;
  const ahead = git(root, ["rev-list", "--count", `${upstream}..HEAD`]).trim();
  if (ahead !== "0") {
    throw new GitError(`${branch} has ${ahead} commit(s) that origin does not: push them (git push) or drop them before deploying`);
  }
  if (signers !== undefined) {
    const problem = commitSigningProblem(root, signers);
    if (problem) {
      throw new GitError(`homelab:fluxVerifyCommits is on, so the commits this deploy makes (a rollback, a release) must be signed by a key of homelab:trustedSigners, or Flux refuses the branch: ${problem}`);
    }
  }
  const co = { root, file, branch, upstream, sign: signers !== undefined };
  // What the fast-forward would bring is vetted before the working tree moves.
  vet(co, git(root, ["rev-parse", "HEAD"]).trim(), git(root, ["rev-parse", upstream]).trim());
  git(root, ["merge", "--ff-only", "--quiet", upstream]);
  return co;
}

/** Who commits: git's own configuration, else a name of the deploy's. */
function identity(root: string): NodeJS.ProcessEnv {
  const get = (key: string): string => {
    try {
      return git(root, ["config", key]).trim();
    } catch {
      return "";
    }
  };
  const name = get("user.name") || "homelab-deploy";
  const email = get("user.email") || `homelab-deploy@${os.hostname()}`;
  return { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
}

/**
 * One commit of the release file on top of `base`, made without touching the working tree or the
 * index: the file's text at `base` goes through `change`, and nothing else of the tree changes.
 */
export function commitFileChange(co: Checkout, base: string, change: (text: string) => string, message: string): string {
  const entry = git(co.root, ["ls-tree", base, "--", co.file]).trim();
  const mode = entry.split(/\s+/)[0] || "100644";
  const text = git(co.root, ["show", `${base}:${co.file}`]);
  const blob = git(co.root, ["hash-object", "-w", "--stdin"], { input: change(text) }).trim();
  const index = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "homelab-git-")), "index");
  try {
    const env = { GIT_INDEX_FILE: index };
    git(co.root, ["read-tree", base], { env });
    git(co.root, ["update-index", "--cacheinfo", `${mode},${blob},${co.file}`], { env });
    const tree = git(co.root, ["write-tree"], { env }).trim();
    return git(co.root, ["commit-tree", ...(co.sign ? ["-S"] : []), tree, "-p", base, "-F", "-"], { input: message, env: identity(co.root) }).trim();
  } finally {
    fs.rmSync(path.dirname(index), { recursive: true, force: true });
  }
}

/** The commit the branch's remote-tracking ref names, freshly fetched. */
export function fetchUpstream(co: Checkout): string {
  git(co.root, ["fetch", "--quiet", "origin", `+refs/heads/${co.branch}:${co.upstream}`]);
  return git(co.root, ["rev-parse", co.upstream]).trim();
}

/** Moves the checkout's branch to `sha`, keeping any other local changes (refuses if they clash). */
export function moveCheckoutTo(co: Checkout, sha: string): void {
  git(co.root, ["reset", "--keep", "--quiet", sha]);
}

export interface PushResult {
  readonly sha: string;
  /** How many times the push raced another commit and was made again on top of it. */
  readonly retries: number;
}

/**
 * Pushes the change as a commit on the branch. When the server has moved (image automation pushed
 * meanwhile), the change is made again on top of its commit and pushed again: never forced. Throws
 * GitError after `attempts` races or on any other failure.
 */
export function pushFileChange(co: Checkout, change: (text: string) => string, message: string, first?: { base: string; sha: string }, attempts = 5): PushResult {
  let base = first?.base ?? fetchUpstream(co);
  let sha = first?.sha ?? commitFileChange(co, base, change, message);
  for (let i = 0; ; i++) {
    try {
      git(co.root, ["push", "--quiet", "origin", `${sha}:refs/heads/${co.branch}`]);
      git(co.root, ["update-ref", co.upstream, sha]);
      return { sha, retries: i };
    } catch (e) {
      const latest = fetchUpstream(co);
      if (latest === base || i + 1 >= attempts) {
        throw new GitError(`could not push to ${co.branch} after ${i + 1} attempt(s): ${(e as Error).message}`);
      }
      base = latest;
      sha = commitFileChange(co, base, change, message);
    }
  }
}

/** A commit of the release file's history. */
export interface FileCommit {
  readonly sha: string;
  readonly at: string;
  readonly author: string;
  readonly subject: string;
  readonly body: string;
  /** The file's text at this commit. */
  readonly text: string;
}

/** The commits that changed the file, newest first. */
export function fileHistory(co: Pick<Checkout, "root" | "file">, ref = "HEAD", limit = 50): FileCommit[] {
  // Commits end with NUL (-z), which no commit message holds; the body, free text, comes last,
  // so separators inside it never start a record or shift a field.
  const out = git(co.root, ["log", "-z", `-n${limit}`, "--format=%H%x1f%aI%x1f%an <%ae>%x1f%s%x1f%b", ref, "--", co.file]);
  return out
    .split("\0")
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r) => r.split("\x1f"))
    // Only what git printed as a commit id ever reaches `git show`.
    .filter(([sha]) => /^[0-9a-f]{40}$/.test(sha ?? ""))
    .map(([sha, at, author, subject, ...rest]) => {
      const body = rest.join("\x1f");
      let text = "";
      try {
        text = git(co.root, ["show", `${sha}:${co.file}`]);
      } catch {
        // deleted in that commit
      }
      return { sha, at, author, subject, body, text };
    });
}

/** The commit on the branch's remote-tracking ref whose message carries `trailer: value`, if any. */
export function commitWithTrailer(co: Checkout, trailer: string, value: string, limit = 200): string | undefined {
  const out = git(co.root, ["log", `-n${limit}`, "--format=%H", "--fixed-strings", `--grep=${trailer}: ${value}`, co.upstream]).trim();
  return out.split("\n")[0] || undefined;
}

/**
 * Drops the checkout's last commit when it is a rollback commit a killed deploy made and never
 * pushed (it carries `trailer: value` and is the branch's only commit the server lacks), so the
 * checkout is in step with git again; the rollback is then made again on top of the server's branch.
 * Returns whether it dropped one.
 */
export function dropUnpushedCommit(workDir: string, branch: string, trailer: string, value: string): boolean {
  try {
    const root = git(workDir, ["rev-parse", "--show-toplevel"]).trim();
    const upstream = `refs/remotes/origin/${branch}`;
    if (git(root, ["rev-list", "--count", `${upstream}..HEAD`]).trim() !== "1" || !git(root, ["log", "-1", "--format=%B", "HEAD"]).includes(`${trailer}: ${value}`)) {
      return false;
    }
    git(root, ["reset", "--keep", "--quiet", "HEAD^"]);
    return true;
  } catch {
    // Not a checkout in that state; syncCheckout says what is wrong with it.
    return false;
  }
}
