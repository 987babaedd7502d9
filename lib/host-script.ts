// The host-side scripts are shell files in remote/. A script sent to a host is a header of
// quoted parameter assignments followed by those files: values never land in a script body.

import * as fs from "fs";
import * as path from "path";
import { shq } from "./shell";

const REMOTE_DIR = path.join(__dirname, "..", "remote");
const PARAM_NAME = /^[A-Z][A-Z0-9_]*$/;

/** Parameter values by name; numbers are written as their decimal text. */
export type ScriptParams = Readonly<Record<string, string | number>>;

/** The text of a file in remote/ (a shell script or an awk program). */
export function remoteFile(name: string): string {
  return fs.readFileSync(path.join(REMOTE_DIR, name), "utf8");
}

/**
 * Renders the script a host runs: `NAME='value'` for each parameter, then the named files of
 * remote/ in order (a later file may use what an earlier one defines).
 */
export function hostScript(files: readonly string[], params: ScriptParams): string {
  const header = Object.entries(params).map(([name, value]) => {
    if (!PARAM_NAME.test(name)) {
      throw new Error(`host script parameter ${JSON.stringify(name)} must be an upper-case shell name`);
    }
    const line = `${name}=${shq(String(value))}`;
    // A value that holds $, a backquote or a backslash is text, not an expansion or an escape.
    return /[$`\\]/.test(String(value)) ? `# shellcheck disable=SC2016,SC1003\n${line}` : line;
  });
  return [...header, ...files.map(remoteFile)].join("\n");
}

/** `{ restoreFailed: 11 }` as `{ EXIT_RESTORE_FAILED: 11 }`: exit codes as script parameters. */
export function exitParams(codes: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(codes).map(([name, code]) => [`EXIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`, code]));
}
