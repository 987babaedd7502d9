import * as pulumi from "@pulumi/pulumi";
import { RollbackEvent } from "../lib/rollback";

export type { RollbackEvent };

/** One image of a promoted release. */
export interface ReleasedImage {
  readonly image: string;
  readonly tag: string;
  readonly digest: string;
}

/** A promoted frontend/backend pair with how long each gate took. */
export interface PromotedRelease {
  readonly frontend: ReleasedImage;
  readonly backend: ReleasedImage;
  readonly gates: { readonly frontendMs: number; readonly backendMs: number };
  /** The parts whose gate did not check which version answers (no marker or version field configured). */
  readonly unverified?: readonly ("frontend" | "backend")[];
}

export interface LedgerEntry {
  readonly at: string;
  /** `interrupted`: the platform cut a release short; nothing was blamed or excluded. */
  readonly result: "promoted" | "rolled-back" | "interrupted";
  /** What runs after this entry: `tag@digest`. */
  readonly frontend: string;
  readonly backend: string;
  readonly gates?: PromotedRelease["gates"];
  /** The parts promoted without their version checked. */
  readonly unverified?: PromotedRelease["unverified"];
  readonly failed?: RollbackEvent["failed"];
  readonly reason?: string;
  readonly stages?: RollbackEvent["stages"];
}

/** How many ledger entries the record keeps. */
export const LEDGER_LIMIT = 50;

export interface RecordInputs {
  release: PromotedRelease;
  rollback?: RollbackEvent;
}

export interface RecordOutputs extends RecordInputs {
  promotedAt: string;
  previous: PromotedRelease | null;
  ledger: LedgerEntry[];
  lastEventId?: string;
}

const ref = (image: ReleasedImage): string => `${image.tag}@${image.digest}`;

/** Appends a promotion to the ledger, keeping the newest LEDGER_LIMIT entries. */
export function appendLedger(ledger: readonly LedgerEntry[], release: PromotedRelease, at: string): LedgerEntry[] {
  const entry: LedgerEntry = {
    at,
    result: "promoted",
    frontend: ref(release.frontend),
    backend: ref(release.backend),
    gates: release.gates,
    ...(release.unverified?.length ? { unverified: release.unverified } : {}),
  };
  return [...ledger, entry].slice(-LEDGER_LIMIT);
}

/** Appends a rollback: the failed tags, why, and the pair running again. */
export function appendRollback(ledger: readonly LedgerEntry[], release: PromotedRelease, event: RollbackEvent): LedgerEntry[] {
  const entry: LedgerEntry = {
    at: event.at,
    result: "rolled-back",
    frontend: ref(release.frontend),
    backend: ref(release.backend),
    failed: event.failed,
    reason: event.reason,
    stages: event.stages,
  };
  return [...ledger, entry].slice(-LEDGER_LIMIT);
}

function sameImages(a: PromotedRelease, b: PromotedRelease): boolean {
  // During preview parts of the new release may still be unknown: count that as a change.
  if (typeof b?.frontend?.digest !== "string" || typeof b?.backend?.digest !== "string") {
    return false;
  }
  return ref(a.frontend) === ref(b.frontend) && ref(a.backend) === ref(b.backend);
}

function newEvent(olds: RecordOutputs, news: RecordInputs): RollbackEvent | undefined {
  return news.rollback && news.rollback.id !== olds.lastEventId ? news.rollback : undefined;
}

/** Drops undefined fields, which the provider protocol cannot carry. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Exported for tests: the provider's diff and update are the promotion semantics. */
export const recordProvider: pulumi.dynamic.ResourceProvider = {
  create(inputs: RecordInputs) {
    const at = new Date().toISOString();
    const outs: RecordOutputs = {
      ...inputs,
      promotedAt: at,
      previous: null,
      ledger: appendLedger([], inputs.release, at),
      lastEventId: inputs.rollback?.id,
    };
    return Promise.resolve({ id: `release-${Date.now()}`, outs: plain(outs) });
  },
  // Gate timings change on every run; only a new image pair or a new rollback is recorded.
  diff(_id: string, olds: RecordOutputs, news: RecordInputs) {
    return Promise.resolve({ changes: !sameImages(olds.release, news.release) || newEvent(olds, news) !== undefined });
  },
  update(_id: string, olds: RecordOutputs, news: RecordInputs) {
    const event = newEvent(olds, news);
    let outs: RecordOutputs;
    if (sameImages(olds.release, news.release)) {
      // A rollback to the pair already recorded: note it, keep promotion times.
      outs = { ...olds, rollback: news.rollback, ledger: event ? appendRollback(olds.ledger ?? [], olds.release, event) : olds.ledger, lastEventId: event?.id ?? olds.lastEventId };
    } else {
      const at = new Date().toISOString();
      let ledger = olds.ledger ?? [];
      if (event) {
        ledger = appendRollback(ledger, news.release, event);
      } else {
        ledger = appendLedger(ledger, news.release, at);
      }
      outs = { ...news, promotedAt: at, previous: olds.release, ledger, lastEventId: event?.id ?? olds.lastEventId };
    }
    return Promise.resolve({ outs: plain(outs) });
  },
};

const RECORD_MODULE = "homelab";
const RECORD_TYPE = "ReleaseRecord";
/** The engine's type token of the record resource (a dynamic resource), by which the deploy finds it in the state. */
export const RELEASE_RECORD_TYPE = `pulumi-nodejs:dynamic/${RECORD_MODULE}:${RECORD_TYPE}`;

class RecordResource extends pulumi.dynamic.Resource {
  declare public readonly release: pulumi.Output<PromotedRelease>;
  declare public readonly previous: pulumi.Output<PromotedRelease | null>;
  declare public readonly promotedAt: pulumi.Output<string>;
  declare public readonly ledger: pulumi.Output<LedgerEntry[]>;

  constructor(name: string, release: pulumi.Input<PromotedRelease>, rollback: RollbackEvent | undefined, opts?: pulumi.CustomResourceOptions) {
    super(recordProvider, name, { release, rollback, previous: undefined, promotedAt: undefined, ledger: undefined, lastEventId: undefined }, opts, RECORD_MODULE, RECORD_TYPE);
  }
}

type Inputs<T> = { readonly [K in keyof T]: pulumi.Input<T[K]> };

export interface ReleaseRecordArgs {
  readonly frontend: Inputs<ReleasedImage>;
  readonly backend: Inputs<ReleasedImage>;
  readonly gates: Inputs<PromotedRelease["gates"]>;
  /** The parts whose gate does not check the version; recorded in the ledger with each promotion. @default [] */
  readonly unverified?: PromotedRelease["unverified"];
  /** Set while `npm run deploy` redeploys the last good pair after a failure. */
  readonly rollback?: RollbackEvent;
}

/**
 * The last promoted release pair, the one before it and a ledger of promotions. It depends on the
 * last gate, so it only moves when every gate passed: after a failure it still names the last
 * good pair, which is what a rollback deploys again.
 */
export class ReleaseRecord extends pulumi.ComponentResource {
  public readonly current: pulumi.Output<PromotedRelease>;
  public readonly previous: pulumi.Output<PromotedRelease | null>;
  public readonly promotedAt: pulumi.Output<string>;
  public readonly ledger: pulumi.Output<LedgerEntry[]>;

  constructor(name: string, args: ReleaseRecordArgs, opts?: pulumi.ComponentResourceOptions) {
    super("homelab:release:ReleaseRecord", name, {}, opts);
    // A plain object of inputs, not one Output: in preview the gate timings are unknown while the
    // images are known, and the diff needs the images.
    const release = { frontend: args.frontend, backend: args.backend, gates: args.gates, ...(args.unverified?.length ? { unverified: args.unverified } : {}) } as pulumi.Input<PromotedRelease>;
    const record = new RecordResource(`${name}-record`, release, args.rollback, { parent: this });
    this.current = record.release;
    this.previous = record.previous;
    this.promotedAt = record.promotedAt;
    this.ledger = record.ledger;
    this.registerOutputs({ current: this.current, previous: this.previous, promotedAt: this.promotedAt, ledger: this.ledger });
  }
}
