import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config";
import { fluxGitUrl, fluxSyncObjects, parseScpAddress } from "../../lib/flux-install";
import { repositoryKey } from "../../deploy/git";
import { SECRET_KEYS, validConfig } from "../support/fixtures";

const isSecret = (k: string): boolean => SECRET_KEYS.includes(k);

function problems(raw: Record<string, string>): string[] {
  try {
    parseConfig(raw, isSecret);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return [...e.problems];
  }
  return [];
}

function gitUrlProblems(value: string): string[] {
  return problems(validConfig({ "homelab:gitUrl": value })).filter((p) => p.startsWith("homelab:gitUrl"));
}

/** The URL pattern Flux's GitRepository CRD validates spec.url against. */
const FLUX_GIT_URL = /^(http|https|ssh):\/\//;

describe("git addresses as users copy them", () => {
  it("reads git's scp-like form as the ssh:// URL of the same repository", () => {
    const cases: [string, string][] = [
      ["git@github.com:homelab/professional-website.git", "ssh://git@github.com/homelab/professional-website.git"],
      ["git@gitea.home.arpa:me/website", "ssh://git@gitea.home.arpa/me/website"],
      ["github.com:me/website.git", "ssh://github.com/me/website.git"],
      ["git@192.168.0.30:/srv/git/website.git", "ssh://git@192.168.0.30/srv/git/website.git"],
      ["git@[fd00::30]:me/website.git", "ssh://git@[fd00::30]/me/website.git"],
    ];
    for (const [scp, ssh] of cases) {
      assert.equal(fluxGitUrl(scp), ssh, scp);
      assert.match(fluxGitUrl(scp), FLUX_GIT_URL);
    }
  });

  it("leaves URLs and local paths alone", () => {
    for (const url of ["ssh://git@github.com/me/website.git", "ssh://git@127.0.0.1:2223/website.git", "https://github.com/me/website.git", "/srv/git/website.git"]) {
      assert.equal(parseScpAddress(url), undefined, url);
      assert.equal(fluxGitUrl(url), url);
    }
  });
});

describe("repositoryKey: the checkout's origin against homelab:gitUrl", () => {
  it("finds the scp-like and the ssh:// form of one repository equal, whichever side holds which", () => {
    const pairs: [string, string][] = [
      ["git@github.com:homelab/professional-website.git", "ssh://git@github.com/homelab/professional-website.git"],
      ["git@github.com:homelab/professional-website", "ssh://git@github.com/homelab/professional-website.git"],
      ["git@GitHub.com:homelab/professional-website.git/", "ssh://git@github.com:22/homelab/professional-website.git"],
      ["git@192.168.0.30:/srv/git/website.git", "ssh://git@192.168.0.30:2222/srv/git/website.git"],
      ["git@[fd00::30]:me/website.git", "ssh://git@[fd00::30]:22/me/website.git"],
    ];
    for (const [scp, ssh] of pairs) {
      assert.equal(repositoryKey(scp), repositoryKey(ssh), `${scp} = ${ssh}`);
      assert.equal(repositoryKey(ssh), repositoryKey(scp), `${ssh} = ${scp}`);
      // And as the program hands it to Flux.
      assert.equal(repositoryKey(fluxGitUrl(scp)), repositoryKey(ssh));
    }
  });

  it("keeps different repositories and hosts apart", () => {
    assert.notEqual(repositoryKey("git@github.com:homelab/website.git"), repositoryKey("ssh://git@github.com/homelab/other.git"));
    assert.notEqual(repositoryKey("ssh://git@github.com/homelab/website.git"), repositoryKey("git@gitlab.com:homelab/website.git"));
    assert.notEqual(repositoryKey("git@github.com:homelab/website.git"), repositoryKey("ssh://git@github.com/other/website.git"));
  });
});

describe("homelab:gitUrl", () => {
  it("takes the scp-like form, gives Flux its ssh:// URL, and asks for the deploy key and known_hosts as for ssh://", () => {
    const cfg = parseConfig(validConfig({ "homelab:gitUrl": "git@github.com:homelab/professional-website.git" }), isSecret).homelab!;
    assert.equal(cfg.settings.flux.gitUrl, "ssh://git@github.com/homelab/professional-website.git");
    assert.ok(cfg.secrets.gitDeployKey);
    const sync = fluxSyncObjects({ gitUrl: cfg.settings.flux.gitUrl, namespace: "flux-system", branch: "master", path: "./x", interval: "1m", timeout: "5m" });
    assert.match(sync.gitRepository.spec.url, FLUX_GIT_URL);

    const raw = validConfig({ "homelab:gitUrl": "git@github.com:homelab/professional-website.git" });
    delete raw["homelab:gitDeployKey"];
    delete raw["homelab:gitKnownHosts"];
    assert.deepEqual(
      problems(raw).map((p) => p.split(":").slice(0, 2).join(":")),
      ["homelab:gitKnownHosts", "homelab:gitDeployKey"],
    );
  });

  it("takes an https URL without a deploy key", () => {
    const raw = validConfig({ "homelab:gitUrl": "https://github.com/homelab/professional-website.git" });
    delete raw["homelab:gitDeployKey"];
    delete raw["homelab:gitKnownHosts"];
    assert.equal(parseConfig(raw, isSecret).homelab!.settings.flux.gitUrl, "https://github.com/homelab/professional-website.git");
  });

  it("refuses a malformed scp-like value, naming the key, the value and what is wrong", () => {
    const cases: [string, RegExp][] = [
      ["git@github.com:2222/me/website.git", /2222 after the colon is read as the start of the path, not as a port: with port 2222, write ssh:\/\/git@github\.com:2222\/me\/website\.git; for a path that starts with 2222, write ssh:\/\/git@github\.com\/2222\/me\/website\.git$/],
      ["git@github.com:", /it names no repository after the colon$/],
      ["git@:me/website.git", /it names no host before the colon$/],
      ["git@bad_host!:me/website.git", /the host "bad_host!" is not a host name or IP address$/],
      ["@github.com:me/website.git", /the user before @ is empty$/],
      ["git@github.com:me/web site.git", /the path holds characters other than letters, digits and \. _ \/ \+ - \(or a \.\. segment\)$/],
      ["git@nas.home.arpa:~/website.git", /Flux cannot read a path under the home directory \(~\): write the absolute path, ssh:\/\/git@nas\.home\.arpa\/<absolute path>$/],
      ["https:github.com/me/website.git", /a URL's scheme is followed by :\/\/, as in https:\/\/host\/owner\/repo\.git$/],
    ];
    for (const [value, reason] of cases) {
      const found = gitUrlProblems(value);
      assert.equal(found.length, 1, `${value}: ${found.join("\n")}`);
      assert.ok(found[0].startsWith(`homelab:gitUrl: ${JSON.stringify(value)} is not a valid scp-style git address (user@host:owner/repo.git): `), found[0]);
      assert.match(found[0], reason);
    }
  });

  it("names the forms it takes when the value is none of them", () => {
    assert.deepEqual(gitUrlProblems("github.com/me/website.git"), [
      'homelab:gitUrl: "github.com/me/website.git" is not a URL (ssh://git@host/owner/repo.git, git@host:owner/repo.git or https://host/owner/repo.git)',
    ]);
    assert.deepEqual(gitUrlProblems("ftp://github.com/me/website.git"), [
      'homelab:gitUrl: "ftp://github.com/me/website.git" must use ssh or https or http (ssh://git@host/owner/repo.git, git@host:owner/repo.git or https://host/owner/repo.git)',
    ]);
  });

  it("refuses credentials in the scp-like form too, masked", () => {
    const found = gitUrlProblems("git:s3cr3t-t0ken@github.com:me/website.git");
    assert.equal(found.length, 1, found.join("\n"));
    assert.match(found[0], /^homelab:gitUrl: "\*\*\*@github\.com:me\/website\.git" carries credentials \(user:token@\)/);
    assert.ok(!found[0].includes("s3cr3t-t0ken"));
  });

  it("says what an https URL needs when it refuses one carrying credentials", () => {
    const [found] = gitUrlProblems("https://deploy:tok-123456@github.com/me/website.git");
    assert.equal(
      found,
      'homelab:gitUrl: "https://***@github.com/me/website.git" carries credentials (user:token@), which plain config would store and print: ' +
        "use an ssh address (ssh://git@host/owner/repo.git or git@host:owner/repo.git) with homelab:gitDeployKey; " +
        "an https URL needs a git credential helper for the deploy's checkout, and Flux needs a Secret with username and password, " +
        "which this program does not create: without one Flux fetches only a repository anyone can read, and image automation cannot push to it",
    );
  });
});
