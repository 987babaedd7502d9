import * as pulumi from "@pulumi/pulumi";

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
}

export interface LedgerEntry {
  readonly at: string;
  readonly result: "promoted";
  readonly frontend: string;
  readonly backend: string;
  readonly gates: PromotedRelease["gates"];
}

/** How many ledger entries the record keeps. */
export const LEDGER_LIMIT = 50;

export interface RecordInputs {
  release: PromotedRelease;
}

export interface RecordOutputs extends RecordInputs {
  promotedAt: string;
  previous: PromotedRelease | null;
  ledger: LedgerEntry[];
}

/** Appends a promotion to the ledger, keeping the newest LEDGER_LIMIT entries. */
export function appendLedger(ledger: readonly LedgerEntry[], release: PromotedRelease, at: string): LedgerEntry[] {
  const entry: LedgerEntry = {
    at,
    result: "promoted",
    frontend: `${release.frontend.tag}@${release.frontend.digest}`,
    backend: `${release.backend.tag}@${release.backend.digest}`,
    gates: release.gates,
  };
  return [...ledger, entry].slice(-LEDGER_LIMIT);
}

function sameImages(a: PromotedRelease, b: PromotedRelease): boolean {
  return a.frontend.digest === b.frontend.digest && a.backend.digest === b.backend.digest && a.frontend.tag === b.frontend.tag && a.backend.tag === b.backend.tag;
}

/** Exported for tests: the provider's diff and update are the promotion semantics. */
export const recordProvider: pulumi.dynamic.ResourceProvider = {
  create(inputs: RecordInputs) {
    const at = new Date().toISOString();
    const outs: RecordOutputs = { ...inputs, promotedAt: at, previous: null, ledger: appendLedger([], inputs.release, at) };
    return Promise.resolve({ id: `release-${Date.now()}`, outs });
  },
  // Gate timings change on every run; only a new image pair is a new promotion.
  diff(_id: string, olds: RecordOutputs, news: RecordInputs) {
    return Promise.resolve({ changes: !sameImages(olds.release, news.release) });
  },
  update(_id: string, olds: RecordOutputs, news: RecordInputs) {
    const at = new Date().toISOString();
    const outs: RecordOutputs = { ...news, promotedAt: at, previous: olds.release, ledger: appendLedger(olds.ledger ?? [], news.release, at) };
    return Promise.resolve({ outs });
  },
};

class RecordResource extends pulumi.dynamic.Resource {
  declare public readonly release: pulumi.Output<PromotedRelease>;
  declare public readonly previous: pulumi.Output<PromotedRelease | null>;
  declare public readonly promotedAt: pulumi.Output<string>;
  declare public readonly ledger: pulumi.Output<LedgerEntry[]>;

  constructor(name: string, release: pulumi.Input<PromotedRelease>, opts?: pulumi.CustomResourceOptions) {
    super(recordProvider, name, { release, previous: undefined, promotedAt: undefined, ledger: undefined }, opts, "homelab", "ReleaseRecord");
  }
}

type Inputs<T> = { readonly [K in keyof T]: pulumi.Input<T[K]> };

export interface ReleaseRecordArgs {
  readonly frontend: Inputs<ReleasedImage>;
  readonly backend: Inputs<ReleasedImage>;
  readonly gates: Inputs<PromotedRelease["gates"]>;
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
    const release: pulumi.Output<PromotedRelease> = pulumi.output({ frontend: args.frontend, backend: args.backend, gates: args.gates });
    const record = new RecordResource(`${name}-record`, release, { parent: this });
    this.current = record.release;
    this.previous = record.previous;
    this.promotedAt = record.promotedAt;
    this.ledger = record.ledger;
    this.registerOutputs({ current: this.current, previous: this.previous, promotedAt: this.promotedAt, ledger: this.ledger });
  }
}
