import * as fs from "fs";
import * as path from "path";

/** A release file holds two image lines and a few exclusions; anything near this is not one. */
const MAX_BYTES = 1024 * 1024;

/**
 * Reads the release file `relative` to `root`: a regular file reached through no symbolic link
 * (inside the repository, none on the whole way). A link could point at any file of the deploy machine (a credentials
 * file), whose content would then be quoted in a parse error and reach a CI log, so nothing is
 * read from anything else, and the error names the setting and the path only.
 */
export function readReleaseFileText(root: string, relative: string, setting = "homelab:releaseFile"): string {
  const base = path.resolve(root);
  const file = path.resolve(base, relative);
  const refuse = (why: string): Error => new Error(`${setting}: ${JSON.stringify(relative)} ${why}; its content is not read`);
  // Inside the repository, every directory on the way is what a commit made, so each is checked;
  // a path the stack's config sets outside it is the user's own, and only the file is.
  const inside = !path.relative(base, file).startsWith("..") && !path.isAbsolute(path.relative(base, file));
  const start = inside ? base : path.dirname(file);
  let at = start;
  for (const part of path.relative(start, file).split(path.sep)) {
    at = path.join(at, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at);
    } catch {
      throw refuse(`does not exist (no ${path.relative(start, at) || at})`);
    }
    if (st.isSymbolicLink()) {
      throw refuse(`goes through the symbolic link ${inside ? path.relative(base, at) : at}: the release file must be a regular file`);
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
