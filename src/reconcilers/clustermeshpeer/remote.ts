/**
 * The read-only watch of one remote cluster's NodePeers, with the credentials of its
 * ClusterMeshPeer's Secret. It keeps the last list it saw (last known good: an unreachable
 * cluster's nodes stay mirrored) and says what state the connection is in.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError, statusCodeOf } from "../../controllers/errors.js";
import { Reflector } from "../../controllers/reflector.js";
import type { KubeObject } from "../../controllers/resource.js";
import { collectionPath } from "../../controllers/resource.js";
import { kubeRequest } from "../../kube/raw.js";
import { NodePeerKind } from "../context.js";
import type { RemoteState } from "./mesh.js";

/** Answers that no retry will change: credentials, RBAC, a cluster without NodePeers. */
const REFUSALS = new Set([400, 401, 403, 404]);
/**
 * A watch over a silently dead path (a partition drops packets, no reset) sees no error until
 * its server-side timeout, minutes later: the API server's /readyz is asked this often, and a
 * probe without an answer restarts the watch.
 */
export const PROBE_INTERVAL_MS = 5_000;
const PROBE_TIMEOUT_MS = 4_000;

export class RemoteCluster {
  private readonly nodes = new Map<string, KubeObject>();
  private readonly reflector: Reflector<KubeObject>;
  private current: RemoteState;
  private lastSync: Date | undefined;
  private probe: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(
    readonly cluster: string,
    /** What the connection was made from (the Secret's resourceVersion): a change restarts it. */
    readonly credentialsVersion: string,
    private readonly kubeconfig: KubeConfig,
    log: Logger,
    private readonly onChange: () => void,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.current = { phase: "connecting", since: now() };
    this.reflector = new Reflector<KubeObject>(
      {
        kubeconfig,
        path: collectionPath(NodePeerKind),
        // A remote cluster back from an outage is picked up within seconds.
        backoff: { initialMs: 500, maxMs: 5_000 },
        log: log.child({ cluster }),
        onError: (err) => this.failed(err),
        onConnected: () => {
          if (this.lastSync) this.synced();
        },
      },
      {
        replace: (items) => {
          this.nodes.clear();
          for (const o of items) this.nodes.set(o.metadata?.name ?? "", o);
          this.synced();
        },
        upsert: (o) => {
          this.nodes.set(o.metadata?.name ?? "", o);
          this.synced();
        },
        remove: (o) => {
          this.nodes.delete(o.metadata?.name ?? "");
          this.synced();
        },
      },
    );
  }

  start(): void {
    this.reflector.start();
    this.probe = setInterval(() => void this.checkReachable(), PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  stop(): Promise<void> {
    clearInterval(this.probe);
    return this.reflector.stop();
  }

  private async checkReachable(): Promise<void> {
    if (this.probing || this.current.phase !== "connected") return;
    this.probing = true;
    try {
      const r = await kubeRequest(this.kubeconfig, "GET", "/readyz", {
        timeoutMs: PROBE_TIMEOUT_MS,
      });
      if (r.status >= 500) throw new Error(`/readyz answered ${r.status}`);
    } catch (err) {
      if (this.current.phase !== "connected") return;
      this.failed(err);
      // Restart the watch: a new connection fails (and retries) instead of waiting in silence.
      await this.reflector.stop();
      this.reflector.start();
    } finally {
      this.probing = false;
    }
  }

  state(): RemoteState {
    return this.current;
  }

  /** The remote NodePeers as last seen; undefined before the first list (nothing to mirror). */
  peers(): KubeObject[] | undefined {
    return this.lastSync ? [...this.nodes.values()] : undefined;
  }

  private synced(): void {
    this.lastSync = this.now();
    this.current = { phase: "connected", lastSync: this.lastSync };
    this.onChange();
  }

  private failed(err: unknown): void {
    const code = statusCodeOf(err);
    const error = describeError(err).replace(/^\d+: /, "");
    const last = this.lastSync ? { lastSync: this.lastSync } : {};
    const next: RemoteState =
      code !== undefined && REFUSALS.has(code)
        ? { phase: "refused", code, error, ...last }
        : this.lastSync
          ? { phase: "unreachable", error, ...last }
          : { phase: "connecting", since: this.now(), error };
    const changed = JSON.stringify(next) !== JSON.stringify(this.current);
    this.current = next;
    if (changed) this.onChange();
  }
}
