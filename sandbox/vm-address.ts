// The backend VM's address in the sandbox. Kubernetes refuses loopback addresses in an
// EndpointSlice, so the VM gets one address of its own outside 127.0.0.0/8, added to this
// machine's loopback interface (a /32: nothing is routed to it from elsewhere). The VM's sshd,
// the backend's published port, the gate's probe and the cluster's EndpointSlice all use it,
// as production uses the VM's one LAN address.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import { readState, updateState } from "./processes";

const STATE_KEY = "vm-address";

function ip(args: readonly string[], what: string): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`vm-address: ${what} failed (ip ${args.join(" ")}): ${(r.stderr || String(r.error)).trim()}`);
  }
  return r.stdout;
}

/**
 * A candidate address for `dir`: 10.250–253.x.y, away from the node's pod bridges (10.100–199)
 * and from any prefix this machine already routes or holds.
 */
export function pickVmAddress(dir: string, inUse: string): string {
  const seed = crypto.createHash("sha256").update(dir).digest();
  for (let i = 0; i < 64; i++) {
    const prefix = `10.${250 + (seed[i % 32] % 4)}.${(seed[(i + 5) % 32] + i) % 256}.`;
    if (!inUse.includes(prefix)) {
      return `${prefix}${2 + (seed[(i + 11) % 32] % 250)}`;
    }
  }
  throw new Error("vm-address: no free 10.250-253.x.y address for the VM");
}

/** Adds (or finds, when a previous call in `dir` added it) the VM's address; returns it. */
export function ensureVmAddress(dir: string): string {
  const held = readState(dir).resources[STATE_KEY] as { address: string } | undefined;
  const addresses = ip(["-4", "-o", "addr", "show"], "listing addresses");
  if (held && addresses.includes(` ${held.address}/32 `)) {
    return held.address;
  }
  const address = held?.address ?? pickVmAddress(dir, addresses + ip(["-4", "route", "show"], "listing routes"));
  // Recorded first, so a stop after a failed add still looks for it.
  updateState(dir, (s) => {
    s.resources[STATE_KEY] = { address };
  });
  ip(["addr", "add", `${address}/32`, "dev", "lo"], `adding ${address} to lo`);
  return address;
}

/** Removes the address `dir` added, if any. */
export function removeVmAddress(dir: string): void {
  const held = readState(dir).resources[STATE_KEY] as { address: string } | undefined;
  if (!held) {
    return;
  }
  if (ip(["-4", "-o", "addr", "show", "dev", "lo"], "listing lo's addresses").includes(` ${held.address}/32 `)) {
    ip(["addr", "del", `${held.address}/32`, "dev", "lo"], `removing ${held.address} from lo`);
  }
  updateState(dir, (s) => {
    delete s.resources[STATE_KEY];
  });
}
