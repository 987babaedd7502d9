import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { renderReleasesPage } from "../../lib/releases-page";
import { SAMPLE_HISTORY } from "../support/release-entries";

/*
 * The releases page in a real browser: Debian's Chromium, headless, loads the file the way a
 * person opens it, with no network. It must log nothing to its console (a blocked fetch or a
 * script would), lay out every row, and paint a picture that is not blank.
 */
let dir: string;
let page: string;

const chromium = (args: string[]): { stdout: string; stderr: string; status: number | null } => {
  const r = spawnSync("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", `--user-data-dir=${path.join(dir, "profile")}`, "--enable-logging=stderr", "--log-level=0", ...args], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
};

/** Width, height and the distinct byte values of a PNG's decompressed image data. */
function pngFacts(file: string): { width: number; height: number; distinct: number } {
  const png = fs.readFileSync(file);
  assert.equal(png.subarray(1, 4).toString("latin1"), "PNG");
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  for (let at = 8; at < png.length; ) {
    const len = png.readUInt32BE(at);
    const type = png.subarray(at + 4, at + 8).toString("latin1");
    const data = png.subarray(at + 8, at + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    } else if (type === "IDAT") {
      idat.push(data);
    }
    at += 12 + len;
  }
  return { width, height, distinct: new Set(zlib.inflateSync(Buffer.concat(idat))).size };
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-page-"));
  page = path.join(dir, "releases.html");
  fs.writeFileSync(page, renderReleasesPage("production", SAMPLE_HISTORY, "2026-12-07T11:00:00.000Z"));
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("the releases page in Chromium", () => {
  it("renders every row and both charts' bars, with nothing on the console", () => {
    const r = chromium(["--dump-dom", `file://${page}`]);
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.deepEqual(r.stderr.split("\n").filter((l) => /:CONSOLE/.test(l)), [], "the page logged to its console");
    const rows = [...r.stdout.matchAll(/<tr class="[^"]*" data-kind="(\w+)">/g)].map((m) => m[1]);
    assert.deepEqual(rows, ["rollback", "release", "interrupted", "release"]);
    assert.equal((r.stdout.match(/<rect class="(frontend|backend)"/g) ?? []).length, 2);
    // The escaped script stayed text: the browser made no element of it.
    assert.doesNotMatch(r.stdout, /<script|<img/);
  });

  it("paints a page, not a blank one", () => {
    const shot = path.join(dir, "releases.png");
    const r = chromium([`--screenshot=${shot}`, "--window-size=1280,900", `file://${page}`]);
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.deepEqual(r.stderr.split("\n").filter((l) => /:CONSOLE/.test(l)), []);
    const facts = pngFacts(shot);
    assert.deepEqual([facts.width, facts.height], [1280, 900]);
    // Text in several colours and the bars: many distinct values, where a blank page has two or three.
    assert.ok(facts.distinct > 40, `only ${facts.distinct} distinct values: a blank page?`);
  });

  it("is what a blocked fetch would show: a page that loads something logs it (the check can fail)", () => {
    const bad = path.join(dir, "bad.html");
    fs.writeFileSync(bad, fs.readFileSync(page, "utf8").replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>'));
    const r = chromium(["--dump-dom", `file://${bad}`]);
    assert.ok(r.stderr.split("\n").some((l) => /:CONSOLE.*Content Security Policy/.test(l)), r.stderr.slice(-2000));
  });
});
