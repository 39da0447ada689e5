import { spawn } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The Kubernetes release the local control plane runs (a supported minor, built from source). */
export const DEFAULT_K8S_VERSION = "1.37.2";

export interface ControlPlaneBinaries {
  kubeApiserver: string;
  etcd: string;
  /** kubectl of the same release, for people and for printer-column checks. */
  kubectl: string | undefined;
  source: "KUBEBUILDER_ASSETS" | "cache" | "built";
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function k8sVersion(): string {
  return process.env.NETLOOM_K8S_VERSION ?? DEFAULT_K8S_VERSION;
}

export function cacheDir(version = k8sVersion()): string {
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache");
  return join(base, "netloom", "envtest", version);
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Debian's etcd-server installs /usr/bin/etcd; a cache or KUBEBUILDER_ASSETS copy wins. */
function findEtcd(dirs: string[]): string | undefined {
  for (const dir of [...dirs, "/usr/bin", "/usr/local/bin"]) {
    const candidate = join(dir, "etcd");
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/** Pure lookup: where the binaries are now, or undefined when they must be built. */
export function locateBinaries(version = k8sVersion()): ControlPlaneBinaries | undefined {
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (assets) {
    const kubeApiserver = join(assets, "kube-apiserver");
    const etcd = findEtcd([assets]);
    if (!executable(kubeApiserver) || !etcd) {
      throw new Error(
        `KUBEBUILDER_ASSETS=${assets} must hold kube-apiserver and etcd (setup-envtest use -p path)`,
      );
    }
    const kubectl = join(assets, "kubectl");
    return {
      kubeApiserver,
      etcd,
      kubectl: executable(kubectl) ? kubectl : undefined,
      source: "KUBEBUILDER_ASSETS",
    };
  }
  const dir = cacheDir(version);
  const kubeApiserver = join(dir, "kube-apiserver");
  const kubectl = join(dir, "kubectl");
  const etcd = findEtcd([dir]);
  if (executable(kubeApiserver) && executable(kubectl) && etcd) {
    return { kubeApiserver, etcd, kubectl, source: "cache" };
  }
  return undefined;
}

/**
 * Finds the control-plane binaries, building kube-apiserver and kubectl from the
 * k8s.io/kubernetes Go module when they are not cached. A cold build takes minutes; progress
 * lines go to `progress`.
 */
export async function ensureBinaries(
  progress: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  version = k8sVersion(),
): Promise<ControlPlaneBinaries> {
  const found = locateBinaries(version);
  if (found) return found;
  const etcd = findEtcd([cacheDir(version)]);
  if (!etcd) {
    throw new Error(
      "etcd not found: install Debian's etcd-server (make deps does this as root) or set KUBEBUILDER_ASSETS",
    );
  }
  const script = join(repoRoot, "hack", "build-control-plane.sh");
  if (!existsSync(script)) throw new Error(`missing ${script}`);
  progress(
    `building kube-apiserver and kubectl v${version} from the Go module proxy into ${cacheDir(version)} (once; cached afterwards)`,
  );
  const started = Date.now();
  await new Promise<void>((resolvePromise, reject) => {
    const child = spawn("bash", [script], {
      env: { ...process.env, K8S_VERSION: version, OUT: cacheDir(version) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const ticker = setInterval(
      () => progress(`  ... still building (${Math.round((Date.now() - started) / 1000)}s)`),
      30_000,
    );
    let tail = "";
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) {
        if (line.startsWith("[build-control-plane]")) progress(`  ${line}`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearInterval(ticker);
      if (code === 0) resolvePromise();
      else reject(new Error(`building the control plane failed (exit ${code}):\n${tail}`));
    });
  });
  progress(`built in ${Math.round((Date.now() - started) / 1000)}s`);
  const built = locateBinaries(version);
  if (!built) throw new Error(`build finished but binaries are missing in ${cacheDir(version)}`);
  return { ...built, source: "built" };
}
