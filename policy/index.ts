// The policy pack: `pulumi preview --policy-pack ./policy`. The rules live in rules.ts so tests can
// load them without starting the pack's gRPC server, which constructing a PolicyPack does.
import { PolicyPack } from "@pulumi/policy";
import { resourcePolicies, stackPolicies } from "./rules";

new PolicyPack("homelab-guardrails", {
  enforcementLevel: "mandatory",
  policies: [...resourcePolicies, ...stackPolicies],
});
