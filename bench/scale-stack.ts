import * as fs from "fs";
import * as path from "path";
import { ConfigMap, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { pinnedRef } from "../sandbox/images";
import { Sandbox } from "../sandbox/sandbox";

const REPO = path.resolve(__dirname, "..");

/** A stack of the scale program (bench/scale) against the sandbox, in a project directory of links. */
export async function scaleStack(sb: Sandbox, projectDir: string, stackName: string): Promise<Stack> {
  if (!fs.existsSync(projectDir)) {
    fs.mkdirSync(projectDir, { recursive: true });
    fs.symlinkSync(path.join(REPO, "bench/scale/index.ts"), path.join(projectDir, "index.ts"));
    fs.symlinkSync(path.join(REPO, "bench/scale/Pulumi.yaml"), path.join(projectDir, "Pulumi.yaml"));
    for (const entry of ["package.json", "tsconfig.json", "node_modules"]) {
      fs.symlinkSync(path.join(REPO, entry), path.join(projectDir, entry));
    }
  }
  const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir: projectDir }, { envVars: sb.pulumiEnv });
  await stack.setAllConfig({
    "scale:kubeconfig": { value: fs.readFileSync(sb.kubeconfig, "utf8"), secret: true },
    "scale:vmHost": { value: sb.vm.host },
    "scale:vmPort": { value: String(sb.vm.port) },
    "scale:vmUser": { value: sb.vm.user },
    "scale:vmHostKey": { value: sb.vm.hostKey },
    "scale:vmPrivateKey": { value: sb.vm.privateKey, secret: true },
    "scale:registry": { value: sb.registry.host },
    "scale:registryUsername": { value: sb.registry.username },
    "scale:registryPassword": { value: sb.registry.password, secret: true },
    "scale:deployDir": { value: path.join(sb.vm.workDir, `scale-${stackName}`) },
  });
  return stack;
}

/** Config of one scale point and release: N frontends and M services on the given tags. */
export function scalePoint(sb: Sandbox, frontends: number, services: number, frontendTag: string, backendTag: string): ConfigMap {
  return {
    "scale:frontends": { value: String(frontends) },
    "scale:services": { value: String(services) },
    "scale:frontendTag": { value: frontendTag },
    "scale:frontendImage": { value: pinnedRef(sb.images, "frontend", frontendTag) },
    "scale:backendImage": { value: pinnedRef(sb.images, "backend", backendTag) },
  };
}
