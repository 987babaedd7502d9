# Reads `docker info --format '{{json .RegistryConfig}}'` and exits 0 when the engine treats
# ENVIRON["REGISTRY"] as insecure, decided as dockerd decides: an IndexConfigs entry of exactly
# that name wins (insecure when its Secure is false); without one, an IPv4 host inside one of
# InsecureRegistryCIDRs (127.0.0.0/8 by default) is insecure. Quotes inside JSON strings are
# escaped, so `"name":{` after `{` or `,` is always a key of IndexConfigs, never text in a URL.
function ip(s, o) { split(s, o, "."); return ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4] }
{ json = json $0 }
END {
  reg = ENVIRON["REGISTRY"]
  key = "\"" reg "\":{"; rest = json
  while ((i = index(rest, key)) > 0) {
    before = substr(rest, i - 1, 1); rest = substr(rest, i + length(key))
    if (before == "{" || before == ",") {
      secure = "\"Secure\":"; j = index(rest, secure)
      if (j > 0 && substr(rest, j + length(secure), 5) == "false") { exit 0 }
      exit 1
    }
  }
  host = reg; sub(/:[0-9]+$/, "", host)
  if (host !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/) { exit 1 }
  field = "\"InsecureRegistryCIDRs\":["; k = index(json, field)
  if (k == 0) { exit 1 }
  list = substr(json, k + length(field)); list = substr(list, 1, index(list, "]") - 1)
  n = split(list, cidrs, ",")
  for (c = 1; c <= n; c++) {
    v = cidrs[c]; gsub(/"/, "", v)
    if (v !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\/[0-9]+$/) { continue }
    split(v, p, "/"); bits = p[2] + 0
    if (bits > 32) { continue }
    size = 1; for (b = bits; b < 32; b++) { size *= 2 }
    if (int(ip(host) / size) == int(ip(p[1]) / size)) { exit 0 }
  }
  exit 1
}
