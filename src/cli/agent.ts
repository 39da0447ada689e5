import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { pino } from "pino";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { NodeAgent } from "../agent/agent.js";
import { KeyStore } from "../agent/keystore.js";
import { agentLeaseKeeper, DEFAULT_LEASE_NAMESPACE } from "../agent/lease.js";
import { peerStatusPatch, statusPatch } from "../agent/status.js";
import { agentWatches } from "../agent/watches.js";
import { EGRESS_BANDWIDTH_ANNOTATION } from "../api/bandwidthpolicy.js";
import { parseDuration } from "../api/quantity.js";
import { mergePatchStatus } from "../controllers/apply.js";
import type { DatapathDriver } from "../datapath-driver/driver.js";
import { BPF_OBJECT, LinuxDriver } from "../datapath-driver/linux/driver.js";
import { defaultRouteDevice, deviceIPv4 } from "../datapath-driver/linux/htb.js";
import { MemoryDriver } from "../datapath-driver/memory.js";
import { DEFAULT_FLOW_BUFFER } from "../flows/buffer.js";
import { DEFAULT_TOP_WORKLOADS } from "../flows/metrics.js";
import { nodeFlows } from "../flows/node-flows.js";
import { DEFAULT_MAX_EVENTS_PER_SECOND } from "../flows/observer.js";
import { recordEvent } from "../kube/events.js";
import { NodeNetworkStateKind, NodePeerKind } from "../reconcilers/context.js";
import { RealClock } from "../util/clock.js";
import { isRoot } from "../util/process.js";
import { flags, loadKubeConfig } from "./args.js";

const COMPONENT = "netloom-agent";

/** A flag's whole number, at least min (1 unless said), or an error naming the flag. */
export function positiveInt(flag: string, text: string | undefined, min = 1): number {
  const n = Number(text);
  if (!text || !/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min)
    throw new Error(
      `netloom agent: ${flag} must be a whole number ≥ ${min}, not ${JSON.stringify(text)}`,
    );
  return n;
}

/** Which driver this node can run: linux needs root, kernel BTF and the compiled programs. */
export function chooseDriver(requested: string | undefined): {
  kind: "linux" | "memory";
  why?: string;
} {
  if (requested === "memory") return { kind: "memory", why: "requested with --driver memory" };
  const missing = [
    !isRoot() && "root (CAP_BPF, CAP_NET_ADMIN)",
    !existsSync("/sys/kernel/btf/vmlinux") && "kernel BTF (/sys/kernel/btf/vmlinux)",
    !existsSync(BPF_OBJECT) && `the eBPF object ${BPF_OBJECT} (make bpf)`,
  ].filter((m): m is string => typeof m === "string");
  if (missing.length === 0) return { kind: "linux" };
  if (requested === "linux")
    throw new Error(`netloom agent: --driver linux needs ${missing.join(", ")}`);
  return { kind: "memory", why: `simulated datapath: missing ${missing.join(", ")}` };
}

/**
 * `netloom agent --node NAME`: render this node's desired datapath from the sources that select
 * it, converge the kernel to it, and report in its NodeNetworkState (and NodePeer).
 */
export async function runAgent(argv: string[]): Promise<number> {
  const f = flags("netloom agent", argv, {
    node: { type: "string" },
    kubeconfig: { type: "string" },
    driver: { type: "string" },
    bpffs: { type: "string", default: "/sys/fs/bpf" },
    "state-dir": { type: "string", default: "/var/lib/netloom" },
    "metrics-port": { type: "string", default: "9962" },
    heartbeat: { type: "string", default: "15s" },
    "wireguard-interface": { type: "string" },
    "lease-namespace": { type: "string" },
    "log-level": { type: "string", default: "info" },
    "flow-buffer": { type: "string", default: String(DEFAULT_FLOW_BUFFER) },
    "flows-port": { type: "string" },
    "flow-top-workloads": { type: "string", default: String(DEFAULT_TOP_WORKLOADS) },
    "flow-max-events": { type: "string", default: String(DEFAULT_MAX_EVENTS_PER_SECOND) },
  });
  const node = f.node ?? process.env.NODE_NAME;
  if (!node) throw new Error("netloom agent: --node (or NODE_NAME) is required");
  const log = pino({ level: f["log-level"] ?? "info" }).child({ node });
  const kc = loadKubeConfig(f.kubeconfig);
  const choice = chooseDriver(f.driver);
  if (choice.why) log.warn({ driver: choice.kind }, choice.why);
  const linux =
    choice.kind === "linux"
      ? new LinuxDriver({ pinDir: join(f.bpffs ?? "/sys/fs/bpf", "netloom") })
      : undefined;
  const driver: DatapathDriver = linux ?? new MemoryDriver();

  const registry = new Registry();
  new Counter({
    name: "netloom_agent_drops_total",
    help: "Packets the eBPF programs dropped, by reason.",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      if (!linux) return;
      const d = linux.drops();
      this.reset();
      this.labels("policy_denied").inc(d.policyDenied);
      this.labels("unencrypted").inc(d.unencrypted);
      this.labels("over_rate").inc(d.overRate);
    },
  });
  new Counter({
    name: "netloom_agent_policy_drops_total",
    help: "Packets NetworkPolicy dropped on this node, by direction and the identities of both ends (bounded by the label sets in the cluster).",
    labelNames: ["direction", "local_identity", "peer_identity"],
    registers: [registry],
    collect() {
      if (!linux) return;
      this.reset();
      for (const d of linux.policyDrops())
        this.labels(d.direction, String(d.localIdentity), String(d.peerIdentity)).inc(d.packets);
    },
  });
  new Gauge({
    name: "netloom_agent_policy_would_drop",
    help: "Connections an audit-mode NetworkPolicy would have dropped on this node (as last read).",
    labelNames: ["policy"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of agent.currentStatus()?.policy?.wouldDrop ?? [])
        this.labels(w.policy).set(w.count);
    },
  });
  const driftEvents = new Counter({
    name: "netloom_agent_drift_events_total",
    help: "Drift found between the desired and the real datapath.",
    labelNames: ["what", "mode"],
    registers: [registry],
  });
  const applyDuration = new Histogram({
    name: "netloom_agent_reconcile_duration_seconds",
    help: "Time to converge the datapath to a new desired state.",
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const appliedGeneration = new Gauge({
    name: "netloom_agent_applied_generation",
    help: "Generation of each source (NetworkConfig, EncryptionProfile) the agent rendered and applied last.",
    labelNames: ["kind", "name"],
    registers: [registry],
  });

  const tunnelPeers = new Gauge({
    name: "netloom_agent_wireguard_peers",
    help: "WireGuard peers: expected (nodes of the profile), configured, handshaken (a working session), without_session (the agent counts it a problem).",
    labelNames: ["state"],
    registers: [registry],
  });
  // Per peer node: one series per node of the profile (mind the cardinality in large clusters).
  const handshakeTime = new Gauge({
    name: "netloom_agent_wireguard_latest_handshake_seconds",
    help: "Unix time of the latest handshake with the peer node (0: none yet).",
    labelNames: ["peer"],
    registers: [registry],
  });
  const peerBytes = new Gauge({
    name: "netloom_agent_wireguard_peer_bytes",
    help: "Bytes through the tunnel to/from the peer node since its current key was configured.",
    labelNames: ["peer", "direction"],
    registers: [registry],
  });
  const rotations = new Counter({
    name: "netloom_agent_wireguard_key_rotations_total",
    help: "Switches of this node to a new WireGuard key.",
    registers: [registry],
  });

  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const dev = defaultRouteDevice();
  const nodeIP = linux && dev ? deviceIPv4(dev) : undefined;
  const nnsRef = {
    apiVersion: "netloom.io/v1alpha1",
    kind: "NodeNetworkState",
    metadata: { name: node },
  };
  const agent = new NodeAgent({
    node,
    driver,
    log,
    heartbeatMs: parseDuration(f.heartbeat ?? "15s"),
    ...(nodeIP ? { nodeIP } : {}),
    keys: new KeyStore(f["state-dir"] ?? "/var/lib/netloom", (reason) => {
      log.warn({ reason }, "new WireGuard key");
      void recordEvent(core, COMPONENT, nnsRef, "Warning", "WireGuardKeyCreated", reason);
    }),
    ...(f["wireguard-interface"] ? { interfaceName: f["wireguard-interface"] } : {}),
    writeStatus: async (status) => {
      await mergePatchStatus(
        custom,
        { kind: NodeNetworkStateKind, name: node },
        statusPatch(status),
      );
      const nc = status.sources?.networkConfig;
      if (nc) appliedGeneration.labels("NetworkConfig", nc.name).set(nc.generation);
      const ep = status.sources?.encryptionProfile;
      if (ep) appliedGeneration.labels("EncryptionProfile", ep.name).set(ep.generation);
    },
    writePeer: async (status) => {
      await mergePatchStatus(custom, { kind: NodePeerKind, name: node }, peerStatusPatch(status));
    },
    onApply: (seconds) => applyDuration.observe(seconds),
    onRotation: () => rotations.inc(),
    onTunnel: (peers, nodeOf, health) => {
      const status = agent.currentStatus()?.wireguard;
      tunnelPeers.labels("expected").set(status?.peers ?? peers.length);
      tunnelPeers.labels("configured").set(peers.length);
      tunnelPeers.labels("handshaken").set(health.handshaken);
      tunnelPeers.labels("without_session").set(health.problemCount);
      handshakeTime.reset();
      peerBytes.reset();
      for (const p of peers) {
        const peer = nodeOf.get(p.publicKey) ?? p.publicKey.slice(0, 8);
        handshakeTime.labels(peer).set(p.lastHandshakeSeconds);
        peerBytes.labels(peer, "sent").set(p.txBytes);
        peerBytes.labels(peer, "received").set(p.rxBytes);
      }
    },
    onBadAnnotation: (pod, value, error) =>
      void recordEvent(
        core,
        COMPONENT,
        { apiVersion: "v1", kind: "Pod", metadata: pod },
        "Warning",
        "BandwidthAnnotationIgnored",
        `${EGRESS_BANDWIDTH_ANNOTATION}=${JSON.stringify(value)} is not honoured: ${error}`,
      ),
    onInvalid: (error) =>
      void recordEvent(core, COMPONENT, nnsRef, "Warning", "InvalidSpec", error),
    onDrift: (items, healed) => {
      const mode = healed ? "Heal" : "Report";
      for (const i of items) driftEvents.labels(i.what, mode).inc();
      const message = `${healed ? "healed" : "found (Report mode: left alone)"}: ${items.map((i) => i.detail).join("; ")}`;
      void recordEvent(
        core,
        COMPONENT,
        nnsRef,
        "Warning",
        healed ? "DriftHealed" : "DriftDetected",
        message,
      );
    },
  });

  const watches = agentWatches(kc, node, agent, log);

  // Flow visibility: events from the eBPF ring buffer, served (authenticated) at /v1/flows.
  const flows = nodeFlows({
    node,
    inputs: {
      policy: () => agent.currentPolicy(),
      directory: () => agent.currentDirectory(),
      desired: () => agent.currentDesired(),
      interfaces: () => linux?.podInterfaces() ?? new Map(),
    },
    ...(linux ? { pinDir: join(f.bpffs ?? "/sys/fs/bpf", "netloom") } : {}),
    registry,
    kubeconfig: kc,
    clock: new RealClock(),
    bufferSize: positiveInt("--flow-buffer", f["flow-buffer"]),
    topWorkloads: positiveInt("--flow-top-workloads", f["flow-top-workloads"], 0),
    maxEventsPerSecond: positiveInt("--flow-max-events", f["flow-max-events"]),
    log: log.child({ component: "flows" }),
  });
  const flowsPort = f["flows-port"];
  const flowsHere = flowsPort === undefined || flowsPort === f["metrics-port"];

  const server = createServer((req, res) => {
    if (flowsHere && flows.handle(req, res)) return;
    if (req.url === "/healthz") {
      res.writeHead(200).end("ok");
    } else if (req.url === "/metrics") {
      registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(Number(f["metrics-port"]), resolve));
  const flowsServer = flowsHere
    ? undefined
    : createServer((req, res) => {
        if (!flows.handle(req, res)) res.writeHead(404).end();
      });
  if (flowsServer)
    await new Promise<void>((resolve) => flowsServer.listen(Number(flowsPort), resolve));

  const leaseNamespace = f["lease-namespace"] ?? DEFAULT_LEASE_NAMESPACE;
  const lease = agentLeaseKeeper(kc, node, { namespace: leaseNamespace, log });
  watches.start();
  agent.start();
  lease.start();
  flows.start();
  log.info(
    { driver: driver.kind, pinDir: linux ? join(f.bpffs ?? "", "netloom") : undefined },
    "agent started",
  );
  process.on("SIGHUP", () => {
    log.info("SIGHUP: checking drift now");
    void agent.checkDrift();
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      // The datapath stays: pinned programs and maps keep forwarding while the agent is away.
      agent.stop();
      lease.stop();
      watches.stop();
      flows.stop();
      server.close();
      flowsServer?.close();
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  log.info("agent stopped; datapath left in place");
  return 0;
}
