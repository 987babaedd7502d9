/** Renders a `.dockerconfigjson` document for one registry (the format of kubernetes.io/dockerconfigjson Secrets). */
export function renderDockerConfigJson(server: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`, "utf8").toString("base64");
  return JSON.stringify({ auths: { [server]: { username, password, auth } } });
}
