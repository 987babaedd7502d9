/** What an attacker or a bad copy-paste appends to an otherwise valid value. */
export const PAYLOADS: Readonly<Record<string, string>> = {
  newline: "\nx",
  "carriage return": "\rx",
  "double quote": '"x',
  "single quote": "'x",
  "command substitution": "$(id)",
  backticks: "`id`",
  semicolon: ";id",
  "YAML document marker": "\n---\nkind: Secret",
  "YAML mapping": ": x",
  "YAML comment": " #x",
  "YAML flow": "{x: [y]}",
  "very long": "a".repeat(5000),
};
