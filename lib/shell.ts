/** Quotes a value for POSIX sh so it is passed as one literal word. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
