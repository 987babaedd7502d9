import { deploy } from "../../deploy/guarded-deploy";

/** Runs the guarded deploy (`npm run deploy`) in this process and returns its exit code and what it printed. */
export async function runDeploy(stack: string, workDir: string): Promise<{ code: number; log: string }> {
  const chunks: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => {
    chunks.push(String(c));
    return write(c);
  });
  try {
    const code = await deploy({ stack, workDir });
    return { code, log: chunks.join("") };
  } finally {
    process.stderr.write = write;
  }
}
