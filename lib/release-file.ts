import * as fs from "fs";
import * as path from "path";

/** A release file holds two image lines and a few exclusions; anything near this is not one. */
const MAX_BYTES = 1024 * 1024;

/**
 * Reads the release file `relative` to `root`: a regular file inside the repository, reached
 * through no symbolic link. A link could point at any file of the deploy machine (a credentials
 * file), whose content would then be quoted in a parse error and reach a CI log, so nothing is
 * read from anything else, and the error names the setting and the path only.
 */
export function readReleaseFileText(root: string, relative: string, setting = "homelab:releaseFile"): string {
  const base = path.resolve(root);
  const file = path.resolve(base, relative);
  const refuse = (why: string): Error => new Error(`${setting}: ${JSON.stringify(relative)} ${why}; its content is not read`);
  if (path.relative(base, file).startsWith("..") || path.isAbsolute(path.relative(base, file))) {
    throw refuse("is outside the repository");
  }
  // Every directory on the way, and the file itself, must be what it says.
  let at = base;
  for (const part of path.relative(base, file).split(path.sep)) {
    at = path.join(at, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at);
    } catch {
      throw refuse(`does not exist (no ${path.relative(base, at)})`);
    }
    if (st.isSymbolicLink()) {
      throw refuse(`goes through the symbolic link ${path.relative(base, at)}: the release file must be a regular file committed in the repository`);
    }
    if (at === file && !st.isFile()) {
      throw refuse("is not a regular file");
    }
    if (at === file && st.size > MAX_BYTES) {
      throw refuse(`is ${st.size} bytes, more than a release file's ${MAX_BYTES}`);
    }
  }
  return fs.readFileSync(file, "utf8");
}
