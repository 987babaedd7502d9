import { deploy } from "../../deploy/guarded-deploy";

/**
 * Runs the guarded deploy (`npm run deploy`) in this process and returns its exit code and what it
 * printed; `onLine` sees each line as it is printed (to act while the deploy runs).
 */
export async function runDeploy(stack: string, workDir: string, opts: { onLine?: (line: string) => void } = {}): Promise<{ code: number; log: string }> {
  const chunks: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => {
    const text = String(c);
    chunks.push(text);
    for (const line of text.split("\n")) {
      opts.onLine?.(line);
    }
    return write(c);
  });
  try {
    const code = await deploy({ stack, workDir });
    return { code, log: chunks.join("") };
  } finally {
    process.stderr.write = write;
  }
}
