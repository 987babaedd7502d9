import type { ReleaseHistoryEntry } from "../../lib/releases-page";

/** A history as releaseHistory returns it, newest first: a rollback, the release it reverted, an interruption, a promotion; hostile text in what commits carry. */
export const SAMPLE_HISTORY: ReleaseHistoryEntry[] = [
  {
    sha: "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3",
    at: "2026-12-07T10:03:00.000Z",
    author: "homelab-deploy",
    kind: "rollback",
    frontend: "main-aaaaaaa-1765100000",
    backend: "main-aaaaaaa-1765100000",
    reason: "backend gate: <script>alert(1)</script> status 503",
    reverts: ["b2b2b2b2b2b2b2b2b2b2"],
  },
  { sha: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", at: "2026-12-07T10:02:00.000Z", author: "fluxcdbot <img src=x onerror=alert(2)>", kind: "release", frontend: "main-bbbbbbb-1765200000", backend: "main-bbbbbbb-1765200000", revertedBy: "c3c3c3c3c3c3c3c3c3c3" },
  { sha: "", at: "2026-12-07T10:01:00.000Z", author: "", kind: "interrupted", frontend: "main-ddddddd-1765150000", backend: "main-ddddddd-1765150000", reason: "the platform failed (registry)" },
  {
    sha: "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
    at: "2026-12-07T10:00:00.000Z",
    author: "fluxcdbot",
    kind: "release",
    frontend: "main-aaaaaaa-1765100000",
    backend: "main-aaaaaaa-1765100000",
    gates: { frontendMs: 4150, backendMs: 1200 },
    promotedAt: "2026-12-07T10:00:40.000Z",
  },
];
