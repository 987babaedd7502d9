/** Where transpiled TypeScript is kept, one file per source content. */
export declare const CACHE: string;
