import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./stacks/config";
import { homelabStack } from "./stacks/homelab";

const config = loadConfig();
const homelab = config.homelab ? homelabStack(config.homelab) : undefined;

export const frontendUrl = homelab?.frontendUrl;
export const apiUrl = homelab?.apiUrl;
export const frontendImage = homelab?.frontendImage;
export const backendImage = homelab?.backendImage;
export const release = homelab?.release;
export const previousRelease = homelab?.previousRelease;
export const promotedAt = homelab?.promotedAt;
export const ledger = homelab?.ledger;
export const gates = homelab?.gates;
export const imageAutomationExclusions = homelab?.imageAutomationExclusions;
export const stack = pulumi.getStack();
