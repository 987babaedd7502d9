import * as os from "os";
import { Freeze, describeFreeze } from "../lib/freeze";
import { readReleaseState, updateReleaseFile } from "../lib/release";
import { DeployOptions, deploy } from "./guarded-deploy";
import { git } from "./git";
import { EXIT } from "./outcome";
import { openReleaseCheckout, pushReleaseChange } from "./release-commit";
import { plainText } from "./rollback-commit";
import { notify } from "./notify";
import { secretValues } from "./release-state";

/** The trailer of the commits that freeze releases and lift a freeze. */
export const FREEZE_TRAILER = "Homelab-Freeze";

export interface FreezeOptions extends DeployOptions {
  /** Lift the freeze instead of recording one. */
  readonly lift: boolean;
  /** Why releases stop (freezing only). */
  readonly reason?: string;
}

const say = (line: string): void => void process.stderr.write(`freeze: ${line}\n`);

/** Who freezes: git's configured author where there is one, else the login. */
function whoAmI(root: string): string {
  try {
    const name = git(root, ["config", "user.name"]).trim();
    const email = git(root, ["config", "user.email"]).trim();
    if (name) {
      return email ? `${name} <${email}>` : name;
    }
  } catch {
    // not configured
  }
  return `${os.userInfo().username}@${os.hostname()}`;
}

/** The commit message of a freeze or of lifting one; the trailer tells tools which. */
export function freezeMessage(change: { freeze: Freeze } | { lifted: Freeze }): string {
  if ("freeze" in change) {
    const f = change.freeze;
    return [`Freeze releases: ${plainText(f.reason).split("\n")[0].slice(0, 72)}`, "", `Releases are ${describeFreeze(f)}.`, "Only the running pair is deployed (its repairs and rollbacks) until the freeze is lifted.", "", `${FREEZE_TRAILER}: frozen`, ""].join("\n");
  }
  return [`Unfreeze releases`, "", `Lifts the freeze: ${describeFreeze(change.lifted)}.`, "", `${FREEZE_TRAILER}: lifted`, ""].join("\n");
}

/**
 * Records a freeze in the release file (or lifts it) as a commit on the branch Flux watches,
 * pushed while the stack's deploy lock is held; then the guarded deploy applies it (image
 * automation suspended while frozen, resumed once lifted).
 */
export async function freeze(opts: FreezeOptions): Promise<number> {
  const rc = await openReleaseCheckout(opts, say);
  if (typeof rc === "number") {
    return rc;
  }
  const { co, base } = rc;
  const { frozen } = readReleaseState(git(co.root, ["show", `${base}:${co.file}`]), co.file);
  let change: { freeze: Freeze } | { lifted: Freeze };
  if (opts.lift) {
    if (!frozen) {
      say(`releases of stack ${opts.stack} are not frozen; nothing to lift`);
      return EXIT.promoted;
    }
    change = { lifted: frozen };
  } else {
    if (frozen) {
      say(`REFUSED: releases are already ${describeFreeze(frozen)}`);
      return EXIT.refused;
    }
    change = { freeze: { by: plainText(whoAmI(co.root)).slice(0, 200), at: new Date().toISOString(), reason: plainText(opts.reason ?? "").trim() } };
  }
  const edit = (text: string): string => updateReleaseFile(text, { frozen: "freeze" in change ? change.freeze : null });
  const message = freezeMessage(change);
  const pushed = await pushReleaseChange(rc, edit, message, say);
  if (typeof pushed === "number") {
    return pushed;
  }
  say(`committed ${pushed.slice(0, 12)} to ${co.branch}: ${"freeze" in change ? `releases ${describeFreeze(change.freeze)}` : "the freeze is lifted"}`);
  // Told once it is in git, whatever the deploy that applies it does.
  const f = "freeze" in change ? change.freeze : change.lifted;
  await notify(rc.cfg, opts.stack, [{ event: "freeze" in change ? "frozen" : "unfrozen", reason: "freeze" in change ? describeFreeze(f) : `lifts the freeze: ${describeFreeze(f)}`, commit: { sha: pushed } }], { secrets: secretValues(rc.cfg), say, tags: rc.stack.workspace });
  // Applies it: image automation suspended (or resumed); the running pair stays.
  return deploy(opts);
}
