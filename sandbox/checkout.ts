// The sandbox's side of git as the source of truth: project checkouts cloned from the sandbox's
// git server, and release commits made on the server the way Flux image automation makes them.

import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { readReleaseState, renderReleaseFile, updateReleaseFile } from "../lib/release";
import { GitServer, commitToServer } from "./git-server";
import type { DemoImages } from "./images";

const REPO = path.resolve(__dirname, "..");
/** Where the program keeps its release file, in this repository and in the git server's. */
export const RELEASE_PATH = "flux/clusters/production/release.yaml";
/** What a stack's program needs from this repository, linked into a checkout (not copied, not committed). */
const PROGRAM_ENTRIES = ["index.ts", "bin", "components", "crds", "lib", "providers", "remote", "stacks", "package.json", "tsconfig.json", "Pulumi.yaml", "node_modules"];
/** Image automation's author, as the program configures it by default. */
export const BOT = { name: "fluxcdbot", email: "fluxcdbot@users.noreply.github.com" } as const;

/** Makes `projectDir` a project of this program by linking the repository's files into it. */
export function linkProgram(projectDir: string): void {
  for (const entry of PROGRAM_ENTRIES) {
    fs.symlinkSync(path.join(REPO, entry), path.join(projectDir, entry));
  }
}

/**
 * A clone of the git server's repository with the program linked in (and ignored by git), on the
 * branch Flux watches: a project checkout the guarded deploy runs from, as a user's clone would be.
 */
export function cloneProject(server: GitServer, dir: string): string {
  execFileSync("git", ["clone", "--quiet", "--branch", server.branch, server.url, dir], { env: { ...process.env, ...server.gitEnv() }, stdio: ["ignore", "ignore", "pipe"] });
  linkProgram(dir);
  fs.appendFileSync(path.join(dir, ".git", "info", "exclude"), PROGRAM_ENTRIES.map((e) => `/${e}\n`).join(""));
  return dir;
}

/** A file as the server's branch has it now. */
export function serverFile(server: GitServer, file: string = RELEASE_PATH): string {
  return execFileSync("git", ["--git-dir", server.repository, "show", `${server.branch}:${file}`], { encoding: "utf8" });
}

/**
 * Commits a new tag pair to the release file on the server, as image automation does: only the
 * image lines change (setter markers, exclusions and the rest of the file stay). A file still
 * naming another registry (the seed's production values) is written afresh for the sandbox's.
 */
export async function commitRelease(server: GitServer, images: DemoImages, frontendTag: string, backendTag: string, message?: string): Promise<string> {
  const current = serverFile(server);
  const registry = images.registry;
  const fresh = (): string =>
    renderReleaseFile({ frontend: { registry, repository: "frontend", tag: frontendTag }, backend: { registry, repository: "backend", tag: backendTag } });
  let text: string;
  try {
    text = current.includes(`${registry}/frontend:`) ? updateReleaseFile(current, { tags: { frontend: frontendTag, backend: backendTag } }) : fresh();
  } catch {
    // A file a test spoiled on purpose: image automation rewrites its lines whatever they held.
    text = fresh();
  }
  return commitToServer(server, { [RELEASE_PATH]: text }, message ?? `Update release: frontend ${frontendTag}, backend ${backendTag}`, BOT);
}

/** Commits a release file that excludes nothing: what a person does to release rolled-back tags. */
export async function clearExclusions(server: GitServer): Promise<string> {
  const current = serverFile(server);
  let state: ReturnType<typeof readReleaseState>;
  try {
    state = readReleaseState(current, RELEASE_PATH);
  } catch {
    // A spoiled file excludes nothing that could be read; the next release commit rewrites it.
    state = { tags: { frontend: "", backend: "" }, excluded: [] };
  }
  if (state.excluded.length === 0) {
    return execFileSync("git", ["--git-dir", server.repository, "rev-parse", server.branch], { encoding: "utf8" }).trim();
  }
  return commitToServer(server, { [RELEASE_PATH]: updateReleaseFile(current, { release: state.excluded }) }, "Release the excluded tags", { name: "homelab tests", email: "tests@homelab.test" });
}
