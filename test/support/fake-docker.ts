import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/**
 * What `docker info --format '{{json .RegistryConfig}}'` prints for an engine with no registry
 * settings of its own: only loopback is insecure (Docker Engine API, RegistryServiceConfig).
 */
export const DOCKER_DEFAULT_REGISTRY_CONFIG = {
  IndexConfigs: { "docker.io": { Name: "docker.io", Mirrors: [], Secure: true, Official: true } },
  InsecureRegistryCIDRs: ["::1/128", "127.0.0.0/8"],
  Mirrors: [],
};

/*
 * The rendered scripts run for real under /bin/sh here, against a stand-in `docker` and `curl`
 * that record what they were asked and behave according to the image in the compose file:
 * images named *unhealthy* report an unhealthy container, *crash* ones keep restarting, *missing*
 * ones cannot be pulled, *hang* ones never finish their pull, *slow* ones take 3s, and a look at
 * an *lookstuck* container never returns.
 */
export const FAKE_DOCKER = `#!/bin/sh
log="$FAKE_STATE/calls"
if [ "$1" = login ]; then pw=$(cat); echo "login $* pwlen=\${#pw}" >> "$log"; echo '{"auths":{}}' > "$DOCKER_CONFIG/config.json"; exit 0; fi
if [ "$1" = inspect ]; then
  img=$(cat "$FAKE_STATE/running" 2>/dev/null)
  case "$img" in *lookstuck*) echo "inspect (hangs)" >> "$log"; exec sleep 600 ;; esac
  restarts=$(cat "$FAKE_STATE/restarts" 2>/dev/null || echo 0)
  status=running; health=healthy
  case "$img" in *crash*) status=restarting; restarts=$((restarts + 3)) ;; esac
  case "$img" in *unhealthy*) health=unhealthy ;; esac
  case "$3" in
    *End.Unix*) echo "$status $restarts $health $(date +%s)" ;;
    *State.Status*) echo "$status $restarts $health" ;;
    *RestartCount*) echo "$restarts" ;;
  esac
  exit 0
fi
if [ "$1" = compose ]; then
  shift; file=""
  while [ $# -gt 0 ]; do case "$1" in -f) file="$2"; shift 2 ;; --project-name|--project-directory) shift 2 ;; *) break ;; esac; done
  echo "compose $*" >> "$log"
  case "$1" in
    version) echo "2.40.3"; exit 0 ;;
    pull) grep -q missing "$file" && exit 1; grep -q hang "$file" && sleep 30; grep -q slow "$file" && sleep 3; exit 0 ;;
    up) img=$(sed -n 's/^ *image: //p' "$file")
      # Like compose, a container is recreated only when its configuration changed.
      if [ "$img" != "$(cat "$FAKE_STATE/running" 2>/dev/null)" ]; then
        echo "$img" > "$FAKE_STATE/running"; echo "cid-$(date +%s%N)" > "$FAKE_STATE/cid"; echo 0 > "$FAKE_STATE/restarts"
        echo "up-recreated $img" >> "$log"
      fi
      # An engine restart recreates its socket.
      grep -q engine-restart "$file" && : > "$FAKE_STATE/docker.sock.new" && mv "$FAKE_STATE/docker.sock.new" "$FAKE_STATE/docker.sock"
      exit 0 ;;
    ps) cat "$FAKE_STATE/cid" 2>/dev/null; exit 0 ;;
    logs) echo "backend | boom"; exit 0 ;;
    down) rm -f "$FAKE_STATE/running" "$FAKE_STATE/cid"; exit 0 ;;
  esac
fi
# The engine's registry settings: registry-config.json when a test wrote one, else Docker's default.
if [ "$1" = info ] && [ "\${2:-}" = --format ]; then
  echo "info --format $3" >> "$FAKE_STATE/info-calls"
  [ -e "$FAKE_STATE/engine-down" ] && exit 1
  case "$3" in *RegistryConfig*) cat "$FAKE_STATE/registry-config.json" 2>/dev/null || echo '${JSON.stringify(DOCKER_DEFAULT_REGISTRY_CONFIG)}' ;; esac
  exit 0
fi
if [ "$1" = info ]; then [ -e "$FAKE_STATE/engine-down" ] && exit 1; exit 0; fi
exit 0
`;
export const FAKE_CURL = `#!/bin/sh
img=$(cat "$FAKE_STATE/running" 2>/dev/null)
case "$img" in *unhealthy*|*crash*|"") exit 22 ;; esac
exit 0
`;

/** Puts the stand-in `docker` and `curl` in `bin`, with their state (and the engine's socket) in `state`. */
export function installFakeDocker(bin: string, state: string): void {
  fs.writeFileSync(path.join(bin, "docker"), FAKE_DOCKER, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "curl"), FAKE_CURL, { mode: 0o755 });
  fs.writeFileSync(path.join(state, "docker.sock"), "");
}

/** Makes the stand-in engine report these registry settings (`docker info`'s RegistryConfig), as JSON. */
export function writeRegistryConfig(state: string, config: unknown): void {
  fs.writeFileSync(path.join(state, "registry-config.json"), `${JSON.stringify(config)}\n`);
}

/** A host for the rendered scripts in a temporary directory: the stand-in docker and curl on its PATH. */
export interface FakeDockerHost {
  readonly root: string;
  readonly bin: string;
  /** What the stand-ins record (`calls`, `running`) and read (`engine-down`). */
  readonly state: string;
  /** Where the deploy's files go; not created, as on a fresh host. */
  readonly deployDir: string;
  /** The environment a script on this host runs with. */
  env(extra?: Record<string, string>): NodeJS.ProcessEnv;
  remove(): void;
}

export function fakeDockerHost(prefix: string): FakeDockerHost {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const bin = path.join(root, "bin");
  const state = path.join(root, "state");
  fs.mkdirSync(bin);
  fs.mkdirSync(state);
  installFakeDocker(bin, state);
  return {
    root,
    bin,
    state,
    deployDir: path.join(root, "opt", "backend"),
    env: (extra = {}) => ({ ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_STATE: state, DOCKER_HOST: `unix://${path.join(state, "docker.sock")}`, ...extra }),
    remove: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}
