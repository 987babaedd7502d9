import { Figure } from "./stats";

/** One scale point: N frontend workloads and M services, `up` moving all of them to a new pair. */
export interface ScalePoint {
  readonly frontends: number;
  readonly services: number;
  /** Resources in the stack at this point (the first `up`'s steps, deletions left out). */
  readonly resources: number;
  /** Seconds of that first `up` (creating what the point adds). */
  readonly create: number;
  readonly preview: Figure;
  readonly up: Figure;
  /** The same move done directly (Floor.scale), and `up` over it run by run. */
  readonly floor: Figure;
  readonly upRatio: Figure;
  /** SSH sessions the VM accepted during each `up`. */
  readonly sshSessions: number[];
  readonly previewRuns: number[];
  readonly upRuns: number[];
  /** Over the first point, run by run. */
  readonly previewGrowth?: Figure;
  readonly upGrowth?: Figure;
}

/** The peers section on one workload profile (bench/profile.ts). */
export interface PeerProfile {
  readonly name: string;
  readonly description: string;
  readonly floor: { frontend: Figure; backend: Figure; total: Figure; back: Figure };
  readonly frontend: { ours: Figure; flux: Figure; ansible: Figure; oursOverFlux: Figure; oursOverAnsible: Figure; oursOverFloor: Figure };
  readonly backend: { ours: Figure; ansible: Figure; oursOverAnsible: Figure; oursOverFloor: Figure };
  readonly promotion: { ours: Figure; ansible: Figure; oursOverAnsible: Figure; oursOverFloor: Figure };
  /** Back to the previous pair: `pulumi up`, the playbook (both), Flux (the frontend). */
  readonly back: { ours: Figure; ansible: Figure; flux: Figure; oursOverAnsible: Figure; oursOverFloor: Figure };
  /** The program's `up` to the new pair, by stage (bench/timeline.ts). */
  readonly stages: Record<string, Figure>;
  /** A no-op `up` after the move back: whole, before its first step, after its last. */
  readonly noop: { up: Figure; before: Figure; after: Figure };
  /**
   * The guarded deploy of a pair whose backend crashes: from the verdict until both serve the
   * previous pair, and until the deploy exits; over the floor's and the playbook's move back.
   */
  readonly rollback?: { verdictToHealthy: Figure; verdictToExit: Figure; oursOverFloor: Figure; oursOverAnsible: Figure };
  /** The median promotion and no-op `up`, phase by phase (bench/timeline.ts criticalPath). */
  readonly phases?: { promotion: TimelinePhase[]; noop: TimelinePhase[] };
  /**
   * The promotion with the frontend's rollout starting one new pod at a time (maxSurge 1, as
   * before) and every new pod at once (the default), in the same runs; `cut` is after over before.
   */
  readonly rolloutSurge?: { oneAtATime: Figure; allAtOnce: Figure; frontendOneAtATime: Figure; frontendAllAtOnce: Figure; cut: Figure };
}

/** One phase of an `up`: a changed step, or the engine's work before, between or after them. */
export interface TimelinePhase {
  readonly what: string;
  readonly from: number;
  readonly to: number;
}

/** What bench/results.json holds; every duration in seconds. */
export interface BenchResults {
  date: string;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string; node: string; loadavgAtStart: number[] };
  runs: number;
  seconds: number;
  promotion?: {
    floor: { frontend: Figure; backend: Figure; total: Figure };
    up: Figure;
    upRatio: Figure;
    deploy: Figure;
    deployRatio: Figure;
    /** The guarded deploy against a bare `pulumi up` of the same change, per run. */
    deployOverUp?: Figure;
    /** `pulumi up --yes` from the CLI (previewing first, as a user runs it) of the same change. */
    cliUp?: Figure;
    deployOverCliUp?: Figure;
    /** The guarded deploy's own `timings:` line, phase by phase (deploy/phases.ts). */
    deployPhases?: Record<string, Figure>;
    stages: Record<string, Figure>;
    stageRatios: { frontend: Figure; backend: Figure };
    sshSessions: { up: number[]; deploy: number[] };
    slowestSteps: { name: string; op: string; seconds: number }[];
    /** The median run's changed steps and the gaps between them, in order. */
    timeline: { what: string; from: number; to: number }[];
  };
  noop?: {
    up: Figure;
    preview: Figure;
    emptyPreview: Figure;
    upRatio: Figure;
    previewRatio: Figure;
    /** The same no-op preview with ts-node type-checking the program, and its ratio to the one without (runs before bin/transpile.js). */
    previewTypeChecked?: Figure;
    typeCheckCut?: Figure;
    /** The same no-op preview with the program's transpile cache emptied first, and its ratio to the one with it. */
    previewFreshTranspile?: Figure;
    freshTranspileCost?: Figure;
    sshSessions: number[];
    upStages: Record<string, number>;
    /** `npm run deploy` of nothing new, its ratio to the no-op `up` run by run, and its phases. */
    deploy?: Figure;
    deployOverUp?: Figure;
    deployPhases?: Record<string, Figure>;
  };
  /**
   * The same promotion (`pulumi up` to a new pair) with the production soak on both gates, and
   * with the sandbox's short one, run by run.
   */
  soak?: {
    /** When it was measured, where that differs from the rest of the file's run (`--only soak` merged in). */
    date?: string;
    /** The production soak, and the short one the other sections run with. */
    seconds: number;
    shortSeconds: number;
    with: Figure;
    without: Figure;
    /** with − without, per run. */
    cost: Figure;
    ratio: Figure;
  };
  rollback?: {
    verdictToHealthy: Figure;
    verdictToExit: Figure;
    failedUp: Figure;
    floor: Figure;
    ratio: Figure;
  };
  /**
   * The tools a user would run instead, in the same run, per workload profile: Flux
   * (kustomize-controller) for the frontend; one Ansible playbook for the whole promotion, its
   * plays' times the stages.
   */
  peers?: { ansible: { version: string; kubernetesClient: boolean }; profiles: PeerProfile[] };
  evaluation?: { program: Figure; empty: Figure; ratio: Figure };
  scale?: { points: ScalePoint[] };
}
