import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeRequest } from "../kube/raw.js";
import { type Clock, RealClock } from "../util/clock.js";

/**
 * Liveness by Lease (KEP-589, as kubelets do in kube-node-lease): one coordination.k8s.io Lease
 * per agent, named after its node, renewed every RENEW_MS and watched by the operator only. No
 * other agent watches it, so a renewal costs one write and one event, never N.
 */
export const AGENT_LEASE_RENEW_MS = 10_000;
export const AGENT_LEASE_DURATION_SECONDS = 40;
export const AGENT_LEASE_LABEL = "app.kubernetes.io/component";
export const AGENT_LEASE_LABEL_VALUE = "netloom-agent";
/**
 * Agents renew their Leases in a namespace of their own (as kubelets do in kube-node-lease):
 * the admission policy guarding them matches the namespace by its label and needs no user name,
 * so it holds whatever name the agent's service account is installed under.
 */
export const DEFAULT_LEASE_NAMESPACE = "netloom-node-leases";

/** Pure: the Lease an agent applies (server-side apply: created the first time, then renewed). */
export function agentLease(node: string, namespace: string, now: Date): Record<string, unknown> {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: node,
      namespace,
      labels: { [AGENT_LEASE_LABEL]: AGENT_LEASE_LABEL_VALUE },
    },
    spec: {
      holderIdentity: node,
      leaseDurationSeconds: AGENT_LEASE_DURATION_SECONDS,
      // MicroTime: RFC 3339 with microseconds.
      renewTime: now.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z"),
    },
  };
}

/** Renews the agent's Lease on the clock; a failed renewal is logged and tried at the next tick. */
export class LeaseKeeper {
  private stopped = false;

  constructor(
    private readonly opts: {
      node: string;
      clock: Clock;
      renew(now: Date): Promise<void>;
      renewMs?: number;
      log?: Logger;
    },
  ) {}

  start(): void {
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.opts.clock.cancel(this.timer());
  }

  private timer(): string {
    return `${this.opts.node}/lease`;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const now = this.opts.clock.now();
    try {
      await this.opts.renew(now);
    } catch (err) {
      this.opts.log?.warn({ err }, "lease renewal failed; retrying at the next tick");
    } finally {
      if (!this.stopped)
        this.opts.clock.schedule(
          this.timer(),
          new Date(now.getTime() + (this.opts.renewMs ?? AGENT_LEASE_RENEW_MS)),
          () => void this.tick(),
        );
    }
  }
}

/** The I/O of a renewal: server-side apply of agentLease (creates it the first time). */
export async function applyAgentLease(
  kc: KubeConfig,
  node: string,
  namespace: string,
  now: Date,
): Promise<void> {
  const r = await kubeRequest(
    kc,
    "PATCH",
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${node}?fieldManager=netloom-agent&force=true`,
    { body: agentLease(node, namespace, now), contentType: "application/apply-patch+yaml" },
  );
  if (r.status >= 300)
    throw new Error(`Lease ${namespace}/${node}: ${r.status} ${r.body.slice(0, 300)}`);
}

/** The Lease keeper of a node's agent, renewing through the API server (agent, simulator, bench). */
export function agentLeaseKeeper(
  kc: KubeConfig,
  node: string,
  opts: { namespace?: string; clock?: Clock; renewMs?: number; log?: Logger } = {},
): LeaseKeeper {
  const namespace = opts.namespace ?? DEFAULT_LEASE_NAMESPACE;
  return new LeaseKeeper({
    node,
    clock: opts.clock ?? new RealClock(),
    renew: (now) => applyAgentLease(kc, node, namespace, now),
    ...(opts.renewMs ? { renewMs: opts.renewMs } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
}
