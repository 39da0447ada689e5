import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, spawnDaemon, terminate } from "../util/process.js";
import { ensureBinaries } from "./binaries.js";
import { generateClusterCerts } from "./certs.js";

export { isAlive };

export interface ControlPlaneOptions {
  /** Everything the control plane writes lives here; removed on stop. */
  dir: string;
  /** Where the admin kubeconfig goes (default: <dir>/kubeconfig). */
  kubeconfigPath?: string;
  /** Write an audit log of every mutating request to <dir>/audit.log (for write counting). */
  auditLog?: boolean;
  /**
   * Also serve on these IPs (the cluster-in-a-box underlay, so agents in node network
   * namespaces reach the API server); they are added to the serving certificate.
   */
  extraAddresses?: string[];
  progress?: (line: string) => void;
}

/** What `cluster up` leaves behind so that `cluster down` (another process) can stop it. */
export interface ControlPlaneState {
  dir: string;
  kubeconfigPath: string;
  apiServerURL: string;
  etcdURL: string;
  etcdPid: number;
  apiServerPid: number;
  apiServerArgs: string[];
  kubeApiserver: string;
  kubectl: string | undefined;
  auditLogPath: string | undefined;
  startedAt: string;
}

const STATE_FILE = "control-plane.json";

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") return reject(new Error("no port"));
      srv.close(() => resolvePort(addr.port));
    });
  });
}

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  logPath: string,
  pid: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) {
      throw new Error(`${what} exited during start-up:\n${tailOf(logPath)}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${tailOf(logPath)}`);
}

function tailOf(path: string, lines = 30): string {
  if (!existsSync(path)) return "(no log)";
  return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
}

async function etcdHealthy(url: string): Promise<boolean> {
  const res = await fetch(`${url}/health`);
  return res.ok && ((await res.json()) as { health?: string }).health === "true";
}

function apiServerReadyz(state: ControlPlaneState, certsDir: string): Promise<boolean> {
  return new Promise((resolveReady) => {
    const req = httpsRequest(
      `${state.apiServerURL}/readyz`,
      {
        ca: readFileSync(join(certsDir, "ca.crt")),
        cert: readFileSync(join(certsDir, "admin.crt")),
        key: readFileSync(join(certsDir, "admin.key")),
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolveReady(res.statusCode === 200);
      },
    );
    req.on("error", () => resolveReady(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

function kubeconfigYaml(server: string, certsDir: string): string {
  const b64 = (f: string) => readFileSync(join(certsDir, f)).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: netloom-local
  cluster:
    server: ${server}
    certificate-authority-data: ${b64("ca.crt")}
users:
- name: netloom-admin
  user:
    client-certificate-data: ${b64("admin.crt")}
    client-key-data: ${b64("admin.key")}
contexts:
- name: netloom-local
  context:
    cluster: netloom-local
    user: netloom-admin
current-context: netloom-local
`;
}

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`;

/**
 * Starts etcd and kube-apiserver on 127.0.0.1 with fresh certificates, waits for /readyz and
 * writes an admin kubeconfig. The processes are detached; stop them with stopControlPlane.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlaneState> {
  const dir = resolve(opts.dir);
  const progress = opts.progress ?? (() => {});
  const existing = readControlPlaneState(dir);
  if (existing && isAlive(existing.apiServerPid)) {
    throw new Error(
      `a control plane is already running from ${dir} (kube-apiserver pid ${existing.apiServerPid}); stop it first`,
    );
  }
  const t0 = Date.now();
  const bins = await ensureBinaries(progress);
  mkdirSync(dir, { recursive: true });
  const certsDir = join(dir, "certs");
  rmSync(certsDir, { recursive: true, force: true });
  generateClusterCerts(certsDir, opts.extraAddresses ?? []);

  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdURL = `http://127.0.0.1:${etcdPort}`;
  const etcdLog = join(dir, "etcd.log");
  const etcd = spawnDaemon(
    bins.etcd,
    [
      `--data-dir=${join(dir, "etcd-data")}`,
      `--listen-client-urls=${etcdURL}`,
      `--advertise-client-urls=${etcdURL}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync=true",
      "--quota-backend-bytes=4294967296",
    ],
    etcdLog,
  );
  const etcdPid = etcd.pid ?? 0;
  await waitFor("etcd", () => etcdHealthy(etcdURL), 30_000, etcdLog, etcdPid);
  progress(`etcd ready on ${etcdURL} (${Date.now() - t0} ms)`);

  let auditLogPath: string | undefined;
  const auditArgs: string[] = [];
  if (opts.auditLog) {
    auditLogPath = join(dir, "audit.log");
    writeFileSync(join(dir, "audit-policy.yaml"), AUDIT_POLICY);
    auditArgs.push(
      `--audit-policy-file=${join(dir, "audit-policy.yaml")}`,
      `--audit-log-path=${auditLogPath}`,
      "--audit-log-format=json",
      "--audit-log-mode=blocking",
    );
  }
  const c = (f: string) => join(certsDir, f);
  const apiServerArgs = [
    `--etcd-servers=${etcdURL}`,
    // kube-apiserver binds one address: all of them when agents in network namespaces need it.
    `--bind-address=${opts.extraAddresses?.length ? "0.0.0.0" : "127.0.0.1"}`,
    "--anonymous-auth=false",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--cert-dir=${certsDir}`,
    `--tls-cert-file=${c("server.crt")}`,
    `--tls-private-key-file=${c("server.key")}`,
    `--client-ca-file=${c("ca.crt")}`,
    `--service-account-key-file=${c("sa.pub")}`,
    `--service-account-signing-key-file=${c("sa.key")}`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--authorization-mode=RBAC",
    "--allow-privileged=true",
    // Loopback is not a valid endpoint for the kubernetes Service; nothing here needs it.
    "--endpoint-reconciler-type=none",
    // No controller-manager creates default ServiceAccounts, so pods could not be admitted
    // (envtest disables the same plugin).
    "--disable-admission-plugins=ServiceAccount",
    ...auditArgs,
  ];
  const kubeconfigPath = resolve(opts.kubeconfigPath ?? join(dir, "kubeconfig"));
  const state: ControlPlaneState = {
    dir,
    kubeconfigPath,
    apiServerURL: `https://127.0.0.1:${apiPort}`,
    etcdURL,
    etcdPid,
    apiServerPid: 0,
    apiServerArgs,
    kubeApiserver: bins.kubeApiserver,
    kubectl: bins.kubectl,
    auditLogPath,
    startedAt: new Date().toISOString(),
  };
  try {
    await launchApiServer(state);
  } catch (err) {
    await terminate(etcdPid);
    throw err;
  }
  mkdirSync(resolve(kubeconfigPath, ".."), { recursive: true });
  writeFileSync(kubeconfigPath, kubeconfigYaml(state.apiServerURL, certsDir), { mode: 0o600 });
  progress(`kube-apiserver ready on ${state.apiServerURL} (${Date.now() - t0} ms)`);
  return state;
}

async function launchApiServer(state: ControlPlaneState): Promise<void> {
  const log = join(state.dir, "kube-apiserver.log");
  const child = spawnDaemon(state.kubeApiserver, state.apiServerArgs, log);
  state.apiServerPid = child.pid ?? 0;
  writeControlPlaneState(state);
  await waitFor(
    "kube-apiserver",
    () => apiServerReadyz(state, join(state.dir, "certs")),
    120_000,
    log,
    state.apiServerPid,
  );
}

/** Stops kube-apiserver only (etcd keeps running): an API server outage. */
export async function stopApiServer(state: ControlPlaneState): Promise<void> {
  await terminate(state.apiServerPid);
}

/** Starts kube-apiserver again on the same port, certificates and etcd; resolves when ready. */
export const startApiServer = launchApiServer;

/** Stops and starts kube-apiserver on the same port and etcd (watch clients must recover). */
export async function restartApiServer(state: ControlPlaneState): Promise<void> {
  await stopApiServer(state);
  await launchApiServer(state);
}

/** Compacts etcd to its current revision, so watches from older resourceVersions get 410 Gone. */
export async function compactEtcd(state: ControlPlaneState): Promise<number> {
  const range = await fetch(`${state.etcdURL}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: Buffer.from("/").toString("base64") }),
  });
  const revision = Number(
    ((await range.json()) as { header: { revision: string } }).header.revision,
  );
  const res = await fetch(`${state.etcdURL}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision, physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
  return revision;
}

export function readControlPlaneState(dir: string): ControlPlaneState | undefined {
  const path = join(resolve(dir), STATE_FILE);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, "utf8")) as ControlPlaneState;
}

function writeControlPlaneState(state: ControlPlaneState): void {
  writeFileSync(join(state.dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** Stops kube-apiserver then etcd and removes everything the control plane wrote. */
export async function stopControlPlane(dir: string): Promise<boolean> {
  const state = readControlPlaneState(dir);
  if (!state) return false;
  await terminate(state.apiServerPid);
  await terminate(state.etcdPid);
  rmSync(state.dir, { recursive: true, force: true });
  rmSync(state.kubeconfigPath, { force: true });
  return true;
}
