import { before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { MOCK_PINNED_HOST_KEY, Recorder, installMocks, settle } from "../support/mocks";
import { hostKeyPinProvider } from "../../providers/host-key-pin";
import { endpoint } from "../../providers/remote-script";

const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfTheHostItselfAAAAAAAAAAAAAAAAAAAAAAAA";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfAManInTheMiddleBBBBBBBBBBBBBBBBBBBBBBBB";
const conn = { host: "vm.lan", port: 22, user: "deploy", privateKey: "PRIVATE" };

let rec: Recorder;

before(async () => {
  rec = installMocks();
  const { HostCheck } = await import("../../components/host-check");
  new HostCheck("tofu-vm", { connection: { ...conn }, deployDir: "/opt/backend", trigger: "r1" });
  new HostCheck("pinned-vm", { connection: { ...conn, hostKey: KEY_A }, deployDir: "/opt/backend", trigger: "r1" });
  await settle(rec);
});

describe("a host key pinned on first contact", () => {
  it("is one resource per host, made before the host's first script, which connects with it", () => {
    const pin = rec.byName("tofu-vm-host-key");
    assert.equal(pin.type, "pulumi-nodejs:dynamic/homelab:HostKeyPin");
    assert.ok(pin.secretInputs.includes("connection"), "the private key it logs in with stays secret");
    const check = rec.byName("tofu-vm-check");
    assert.ok(check.dependencies.includes(pin.urn), "the check waits for the pin");
    const c = check.inputs.connection as { hostKey?: string; trustOnFirstUse?: boolean };
    assert.equal(c.hostKey, MOCK_PINNED_HOST_KEY);
    assert.equal(c.trustOnFirstUse, true, "marked as pinned on first contact, for the policy and the earlier pins' check");
  });

  it("is not made where the host key is configured", () => {
    assert.throws(() => rec.byName("pinned-vm-host-key"), /no resource named/);
    const c = rec.byName("pinned-vm-check").inputs.connection as { hostKey?: string; trustOnFirstUse?: boolean };
    assert.equal(c.hostKey, KEY_A);
    assert.equal(c.trustOnFirstUse, undefined);
  });

  it("is never taken again: a refresh and an update keep it; only another host or port replaces it", async () => {
    const olds = { connection: conn, hostKey: KEY_A };
    assert.deepEqual(await hostKeyPinProvider.read!("vm.lan:22", olds), { id: "vm.lan:22", props: olds });
    const newKey = { connection: { ...conn, privateKey: "ROTATED" } };
    assert.deepEqual(await hostKeyPinProvider.diff!("vm.lan:22", olds, newKey), { changes: true, replaces: [], deleteBeforeReplace: true });
    assert.equal((await hostKeyPinProvider.update!("vm.lan:22", olds, newKey)).outs?.hostKey, KEY_A);
    assert.deepEqual((await hostKeyPinProvider.diff!("vm.lan:22", olds, { connection: { ...conn, host: "vm2.lan" } })).replaces, ["connection.host"]);
    assert.deepEqual((await hostKeyPinProvider.diff!("vm.lan:22", olds, { connection: { ...conn, port: 2222 } })).replaces, ["connection.port"]);
    assert.equal((await hostKeyPinProvider.diff!("vm.lan:22", olds, { connection: conn })).changes, false);
  });

  it("must agree with a key a script pinned for itself before: otherwise the script refuses to connect", () => {
    const pinnedByHost = { connection: { ...conn, hostKey: KEY_B, trustOnFirstUse: true } };
    assert.throws(() => endpoint(pinnedByHost, KEY_A), new RegExp(`pinned as ${KEY_A} by an earlier run, and the host's pin now says ${KEY_B}: refusing to connect`));
    // The same key with another comment is the same key.
    assert.equal(endpoint({ connection: { ...conn, hostKey: `${KEY_A} root@vm`, trustOnFirstUse: true } }, KEY_A).hostKey, `${KEY_A} root@vm`);
    // A configured key is the operator's word: it stands over an earlier pin.
    assert.equal(endpoint({ connection: { ...conn, hostKey: KEY_B } }, KEY_A).hostKey, KEY_B);
    // No key given: the script's own pin.
    assert.equal(endpoint({ connection: { ...conn, trustOnFirstUse: true } }, KEY_A).hostKey, KEY_A);
  });
});
