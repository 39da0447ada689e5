import type { Logger } from "pino";
import { pino } from "pino";
import {
  type NodeDatapath,
  type NodeNetworkStateStatus,
  nodeNetworkState,
} from "../api/nodenetworkstate.js";
import type { NodePeer, NodePeerStatus } from "../api/nodepeer.js";
import { parseApiObject } from "../api/parse.js";
import { parseDuration } from "../api/quantity.js";
import { formatTime } from "../controllers/conditions.js";
import type {
  ApplyContext,
  ApplyReport,
  Capabilities,
  DatapathDriver,
} from "../datapath-driver/driver.js";
import {
  type DriftItem,
  diffDatapath,
  expectedState,
  planDatapath,
} from "../datapath-driver/driver.js";
import type { PeerState } from "../datapath-driver/wireguard/uapi.js";
import type { EndpointDirectory } from "../flows/context.js";
import { IpcacheTable } from "../policy/ipcache.js";
import { type NodePolicy, wouldDropByPolicy } from "../policy/node.js";
import { contentHash } from "../reconcilers/shared/hash.js";
import { type Clock, RealClock } from "../util/clock.js";
import type { KeyStore } from "./keystore.js";
import { planPeers, usablePeers } from "./peers.js";
import {
  type Announcement,
  firstRotationDue,
  ROTATION_GUARD_MS,
  rotationClash,
} from "./rotation.js";
import { type RawSources, SourceParser } from "./sources.js";
import {
  statusAfterApply,
  statusAfterDriftCheck,
  statusAfterDriftCheckFailed,
  statusInvalidSpec,
} from "./status.js";
import { type TunnelHealth, tunnelHealth } from "./tunnel-health.js";

export interface NodeAgentOptions {
  node: string;
  driver: DatapathDriver;
  /** Writes the whole status of this node's NodeNetworkState (through /status). */
  writeStatus(status: NodeNetworkStateStatus): Promise<void>;
  /**
   * Writes the whole status of this node's NodePeer: what peers need (key, endpoint, rotation
   * announcements). Called only when that changes; without it the node publishes no peer data.
   */
  writePeer?(status: NodePeerStatus): Promise<void>;
  /** A status write with no answer after this long fails and is retried (WRITE_TIMEOUT_MS). */
  writeTimeoutMs?: number;
  /** Parses watched objects (simulated agents in one process share one). */
  parser?: SourceParser;
  /** Each apply's duration in seconds (a metric in the real agent). */
  onApply?(seconds: number, ok: boolean): void;
  /** The tunnel's sessions, on every heartbeat: metrics in the real agent. */
  onTunnel?(
    peers: readonly PeerState[],
    nodeOf: ReadonlyMap<string, string>,
    health: TunnelHealth,
  ): void;
  /** An object the agent received but cannot use (an Event in the real agent). */
  onInvalid?(error: string): void;
  /**
   * A pod's egress-bandwidth annotation that cannot be honoured (not a rate, or out of bounds):
   * an Event on the pod in the real agent. Called once per pod and value.
   */
  onBadAnnotation?(pod: { namespace: string; name: string }, value: string, error: string): void;
  /** This node switched to a new WireGuard key (a metric in the real agent). */
  onRotation?(): void;
  /** Reported on drift: an Event and a metric in the real agent. */
  onDrift?(items: DriftItem[], healed: boolean): void;
  heartbeatMs?: number;
  /** First retry after a failed apply; doubles up to 30 s. */
  retryMs?: number;
  nodeIP?: string;
  /** The node's WireGuard keys; without one the agent does not encrypt. */
  keys?: KeyStore;
  /** Replaces the profile's interface name: simulated nodes share one kernel (and socket dir). */
  interfaceName?: string;
  /** How far ahead a rotated key is announced before peers and the node switch (5 s). */
  rotationLeadMs?: number;
  /** Time and timers (tests pass a FakeClock and move it instead of sleeping). */
  clock?: Clock;
  log?: Logger;
}

/** Pure: what the node's policy datapath must hold, as a digest (the ipcache by its epoch). */
function policyHash(p: NodePolicy): string {
  return contentHash({ ...p, ipcache: p.ipcache.epoch });
}

/** How far past a clashing peer's announced switch a deferred rotation aims, beyond the guard. */
const ROTATION_RETRY_SLACK_MS = 500;

/** The agent's timers (per node on a shared clock): scheduling one again replaces it. */
const TIMER = {
  heartbeat: "heartbeat",
  drift: "drift",
  retry: "retry",
  peerSwitch: "peer-switch",
  announce: "rotation-announce",
  ownSwitch: "rotation-switch",
  republish: "republish",
} as const;

/**
 * The node agent's core, shared by `netloom agent` (linux driver) and the simulator (memory
 * driver): converge on every new spec, re-check drift every drift.checkInterval, heartbeat.
 * Work is serialised: an apply and a drift check never overlap. Every timer sits on one clock
 * and each unit re-arms its own timer whatever happens, so a step that throws cannot stop
 * another unit's (or its own next) run.
 */
export class NodeAgent {
  /** What this node must hold, rendered from the watched sources (undefined: node gone). */
  private desired: NodeDatapath | undefined;
  /** What this node enforces for NetworkPolicy, rendered with `desired`. */
  private policy: NodePolicy | undefined;
  /** Identities and pod addresses as last rendered (flow records name their ends by it). */
  private directory: EndpointDirectory | undefined;
  /** Audit-mode would-drop counts as last read (ride on heartbeats). */
  private wouldDrop: { policy: string; count: number }[] = [];
  /** The generation of this node's NodeNetworkState (stamped on the conditions). */
  private generation = 1;
  private status: NodeNetworkStateStatus | undefined;
  private appliedKey: string | undefined;
  private caps: Capabilities | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failures = 0;
  private stopped = false;
  private readonly parser: SourceParser;
  /** This node's ipcache, kept across renders (only changed endpoint slices are re-read). */
  private readonly ipcache = new IpcacheTable();
  /** The sources as the watches delivered them last; rendered once per burst of events. */
  private raw: RawSources | undefined;
  private renderQueued = false;
  /** Every node's peer entry as the watch delivered it; parsed (once per object) when used. */
  private peerObjects: readonly unknown[] = [];
  /** Pod annotations already reported as not honoured (pod=value). */
  private readonly reportedAnnotations = new Set<string>();
  /** Problems with peer data already reported (each once). */
  private readonly reportedPeerProblems = new Set<string>();
  /** Not before this switch time: a peer's clashing switch comes first. */
  private rotationDeferredTo: number | undefined;
  private readonly configuredAt = new Map<string, number>();
  /** The last session check (tunnelStatus), repeated in every status write until the next. */
  private tunnel: Pick<
    NonNullable<NodeNetworkStateStatus["wireguard"]>,
    "peersHandshaken" | "peersWithoutSession" | "peerProblems"
  > = {};
  /** Keys and peers last pushed to the tunnel (by an apply or the rotation fast path). */
  private pushedWireguard: string | undefined;
  private rotationDueAt: number | undefined;
  private rotationAnchor: number | undefined;
  private rotationInterval: number | undefined;
  private lastRotation: string | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** What was last written, without its time: the heartbeat writes only a different report. */
  private publishedHash: string | undefined;
  /** The peer data last written to this node's NodePeer. */
  private publishedPeerHash: string | undefined;
  /** Status writes failed in a row (the retry backs off). */
  private publishFailures = 0;
  private readonly writeTimeoutMs: number;

  constructor(private readonly opts: NodeAgentOptions) {
    this.clock = opts.clock ?? new RealClock();
    this.log = (opts.log ?? pino({ level: "silent" })).child({ node: opts.node });
    this.parser = opts.parser ?? new SourceParser();
    this.writeTimeoutMs = opts.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
  }

  get node(): string {
    return this.opts.node;
  }

  /** The status last written (or about to be). */
  currentStatus(): NodeNetworkStateStatus | undefined {
    return this.status;
  }

  /** The desired datapath rendered last. */
  currentDesired(): NodeDatapath | undefined {
    return this.desired;
  }

  /** The NetworkPolicy rendered last (its local endpoints and what isolates them). */
  currentPolicy(): NodePolicy | undefined {
    return this.policy;
  }

  /** Identities and pod addresses as rendered last. */
  currentDirectory(): EndpointDirectory | undefined {
    return this.directory;
  }

  /** Whether these sources make this node encrypt (then it needs its peers before applying). */
  wantsPeers(raw: RawSources): boolean {
    const r = this.parser.render(raw, this.ipcache);
    return r.ok && r.spec?.wireguard !== undefined;
  }

  /** Feed this node's desired datapath (undefined when the node is gone). */
  observe(desired: NodeDatapath | undefined): Promise<void> {
    this.desired = desired;
    return this.serial(() => this.converge());
  }

  /**
   * Feed the watched sources as the API server sent them. Rendering waits for the serial chain,
   * so a burst of events (a sync, a busy node) renders once. A source the code cannot use is
   * reported (Ready=False InvalidSpec naming the field, onInvalid) and the datapath applied
   * last stays.
   */
  observeSources(raw: RawSources): Promise<void> {
    this.raw = raw;
    if (this.renderQueued) return this.chain;
    this.renderQueued = true;
    return this.serial(async () => {
      this.renderQueued = false;
      const r = this.parser.render(this.raw!, this.ipcache);
      if (r.ok) {
        if (r.spec) this.reportBadAnnotations(r.rendered.badAnnotations);
        this.desired = r.spec;
        this.policy = r.spec ? r.policy : undefined;
        this.directory = r.spec ? r.directory : undefined;
        await this.converge();
        return;
      }
      this.log.warn({ error: r.error }, "a source is not usable");
      this.opts.onInvalid?.(r.error);
      await this.publish(
        statusInvalidSpec(this.status, r.error, this.generation, this.clock.now()),
      );
    });
  }

  /**
   * Feed this node's NodeNetworkState as read at start: its last report is kept across agent
   * restarts (counters go on).
   */
  observeOwnState(obj: unknown): void {
    const parsed = parseApiObject(nodeNetworkState, obj);
    if (!parsed.ok) return;
    this.generation = parsed.value.metadata.generation ?? 1;
    if (parsed.value.status && !this.status) this.status = parsed.value.status;
  }

  /** Feed every NodePeer as sent; entries that do not parse or clash are left out and reported. */
  observePeerObjects(objs: readonly unknown[]): Promise<void> {
    this.peerObjects = objs;
    // Without WireGuard nothing reads peers: no parsing until it is switched on.
    if (!this.desired?.wireguard) return this.chain;
    return this.serial(async () => {
      await this.fastSwitch();
      await this.yieldOnClash();
      await this.converge();
    });
  }

  /** Feed every NodePeer (parsed already: tests). */
  observePeers(peers: NodePeer[]): Promise<void> {
    return this.observePeerObjects(peers);
  }

  private reportBadAnnotations(bad: readonly { pod: string; value: string; error: string }[]) {
    for (const b of bad) {
      const key = `${b.pod}=${b.value}`;
      if (this.reportedAnnotations.has(key)) continue;
      this.reportedAnnotations.add(key);
      const [namespace = "", name = ""] = b.pod.split("/");
      this.log.warn({ pod: b.pod, error: b.error }, "egress-bandwidth annotation not honoured");
      this.opts.onBadAnnotation?.({ namespace, name }, b.value, b.error);
    }
  }

  /** The peer entries this node may use; each problem (no parse, a key clash) reported once. */
  private peerEntries(ownKeys: readonly string[]): NodePeer[] {
    const parsed = this.parser.peers(this.peerObjects);
    const usable = usablePeers(this.node, ownKeys, parsed.peers);
    for (const problem of [...parsed.errors, ...usable.problems]) {
      if (this.reportedPeerProblems.has(problem)) continue;
      this.reportedPeerProblems.add(problem);
      this.log.warn({ problem }, "peer data not usable: left out");
      this.opts.onInvalid?.(problem);
    }
    return usable.peers;
  }

  /** Re-read the kernel now (the real agent calls this on SIGHUP too). */
  checkDrift(): Promise<void> {
    return this.serial(() => this.driftCheck());
  }

  start(): void {
    this.scheduleHeartbeat();
  }

  stop(): void {
    this.stopped = true;
    for (const name of Object.values(TIMER)) this.cancel(name);
  }

  /** Settles when the work queued so far has run (tests await it after moving the clock). */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Arms a named timer whose work runs in the serial chain; never while stopped. */
  private after(name: string, ms: number, fn: () => Promise<void>): void {
    this.at(name, new Date(this.clock.now().getTime() + ms), fn);
  }

  private at(name: string, when: Date, fn: () => Promise<void>): void {
    if (this.stopped) return;
    this.clock.schedule(`${this.node}/${name}`, when, () => void this.serial(fn));
  }

  private cancel(name: string): void {
    this.clock.cancel(`${this.node}/${name}`);
  }

  private scheduleHeartbeat(): void {
    this.after(TIMER.heartbeat, this.opts.heartbeatMs ?? 15_000, async () => {
      try {
        await this.heartbeat();
      } finally {
        this.scheduleHeartbeat();
      }
    });
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn).catch((err: unknown) => {
      this.log.error({ err }, "agent step failed");
    });
    this.chain = next;
    return next;
  }

  private async capabilities(): Promise<Capabilities> {
    this.caps ??= await this.opts.driver.capabilities();
    return this.caps;
  }

  private async converge(): Promise<void> {
    const spec = this.desired;
    if (!spec) {
      if (this.appliedKey !== undefined) {
        await this.opts.driver.teardown();
        this.appliedKey = undefined;
      }
      return;
    }
    const specHash = contentHash(spec);
    const wg = this.wireguardContext(spec);
    // A peer's announcement alone changes no applied state: its fallback switch must be armed
    // before the early return below, or a late confirmation would leave the queue to overflow.
    if (wg?.nextSwitch) this.scheduleAt(wg.nextSwitch, "switch");
    const key = `${specHash}/${wg ? this.wireguardHash(wg) : ""}/${this.policy ? policyHash(this.policy) : ""}`;
    if (key === this.appliedKey) return;
    // Peers coming and going change no spec: their count rides on the next heartbeat, so a node
    // joining does not make every other node write at once.
    const peersOnly =
      this.appliedKey?.startsWith(`${specHash}/`) &&
      this.status?.wireguard?.publicKey === wg?.publicKey;
    let result: Parameters<typeof statusAfterApply>[1]["result"];
    const started = performance.now();
    try {
      result = {
        ok: true,
        report: await this.opts.driver.apply(spec, this.applyContext(wg)),
      };
      this.appliedKey = key;
      this.pushedWireguard = wg ? this.wireguardHash(wg) : undefined;
      if (wg) this.notePeersConfigured(wg.ctx.peers);
      this.failures = 0;
      this.log.info({ sources: spec.sources }, "applied");
    } catch (err) {
      result = { ok: false, error: err instanceof Error ? err.message : String(err) };
      this.appliedKey = undefined;
      this.log.warn({ sources: spec.sources, error: result.error }, "apply failed");
      this.scheduleRetry();
    }
    this.opts.onApply?.((performance.now() - started) / 1000, result.ok);
    const status = statusAfterApply(
      this.status,
      { generation: this.generation, sources: spec.sources, specHash, result },
      {
        now: this.clock.now(),
        capabilities: await this.capabilities(),
        driver: this.opts.driver.kind,
        ...(this.opts.nodeIP ? { nodeIP: this.opts.nodeIP } : {}),
      },
    );
    if (!wg) this.tunnel = {};
    status.policy = this.policyStatus(result.ok ? result.report : undefined);
    status.wireguard =
      wg && result.ok ? this.wireguardStatus(spec, wg, result.report.wireguard) : undefined;
    if (peersOnly && result.ok) this.status = status;
    else await this.publish(status);
    this.scheduleDrift(spec);
    this.scheduleRotation(spec);
  }

  private applyContext(wg: ReturnType<NodeAgent["wireguardContext"]>): ApplyContext {
    return {
      ...(wg ? { wireguard: wg.ctx } : {}),
      ...(this.policy ? { policy: this.policy } : {}),
    };
  }

  /** The policy part of the report: enforcement, enforced pods, audit-mode would-drops. */
  private policyStatus(report: ApplyReport | undefined): NodeNetworkStateStatus["policy"] {
    if (!this.policy) return undefined;
    return {
      enforcement: this.policy.enforcement,
      endpoints: report?.policyEndpoints ?? this.status?.policy?.endpoints ?? 0,
      ...(this.wouldDrop.length ? { wouldDrop: this.wouldDrop } : {}),
    };
  }

  private wireguardContext(spec: NodeDatapath) {
    const w = spec.wireguard;
    if (!w || !this.opts.keys) return undefined;
    const ifname = this.opts.interfaceName ?? w.interfaceName;
    const keys = this.opts.keys.current(ifname);
    const plan = planPeers(
      this.node,
      w.profile,
      this.peerEntries(this.ownKeys(ifname)),
      this.clock.now(),
      w.persistentKeepaliveSeconds,
      w.nodeEncryption === true,
    );
    return {
      ctx: { ifname, privateKey: keys.privateKey, peers: plan.peers },
      publicKey: keys.publicKey,
      expected: plan.expected,
      nextSwitch: plan.nextSwitch,
      nodeOf: plan.nodeOf,
      keepaliveSeconds: w.persistentKeepaliveSeconds,
    };
  }

  /** Only public material: the private key stays in the driver and the 0600 file. */
  private wireguardStatus(
    spec: NodeDatapath,
    wg: NonNullable<ReturnType<NodeAgent["wireguardContext"]>>,
    applied: ApplyReport["wireguard"],
  ): NodeNetworkStateStatus["wireguard"] {
    const next = this.opts.keys?.next;
    const configured = applied?.peersConfigured ?? 0;
    return {
      ...(applied ? { backend: applied.backend } : {}),
      ...(applied?.implementation ? { implementation: applied.implementation } : {}),
      publicKey: wg.publicKey,
      ...(this.opts.nodeIP
        ? { endpoint: `${this.opts.nodeIP}:${spec.wireguard?.listenPort}` }
        : {}),
      peers: wg.expected,
      peersConfigured: configured,
      ...this.tunnel,
      ...(next
        ? { nextPublicKey: next.publicKey, nextKeySwitchTime: next.switchAt.toISOString() }
        : {}),
      ...(this.lastRotation ? { lastRotationTime: this.lastRotation } : {}),
    };
  }

  /** The rotation fast path: keys and peers straight to the tunnel, the rest follows. */
  private async fastSwitch(): Promise<void> {
    const spec = this.desired;
    const wg = spec ? this.wireguardContext(spec) : undefined;
    if (!spec?.wireguard || !wg || !this.opts.driver.switchKeys) return;
    // Only on a running tunnel, and only when keys or peers changed (not on every heartbeat).
    const pushed = this.wireguardHash(wg);
    if (this.appliedKey === undefined || this.pushedWireguard === pushed) return;
    await this.opts.driver.switchKeys(spec.wireguard.listenPort, wg.ctx);
    this.pushedWireguard = pushed;
  }

  /** This node's public keys (current, and an announced next one). */
  private ownKeys(ifname: string): string[] {
    const keys = this.opts.keys;
    if (!keys) return [];
    return [keys.current(ifname).publicKey, ...(keys.next ? [keys.next.publicKey] : [])];
  }

  private wireguardHash(wg: NonNullable<ReturnType<NodeAgent["wireguardContext"]>>): string {
    return contentHash({ p: wg.ctx.peers, k: wg.publicKey });
  }

  /** Re-converge when a peer's announced key is due even without its confirmation. */
  private scheduleAt(at: Date, why: string): void {
    this.at(TIMER.peerSwitch, at, async () => {
      this.log.info({ why }, "key switch");
      await this.fastSwitch();
      await this.converge();
    });
  }

  /**
   * Scheduled rotation: announce the next public key with a switch time rotationLeadMs ahead;
   * at that time this node switches, and its peers follow once its status says so (peerKeyAt).
   */
  private scheduleRotation(spec: NodeDatapath): void {
    const interval = spec.wireguard?.keyRotationIntervalSeconds;
    if (!interval || !this.opts.keys || this.stopped) {
      this.cancel(TIMER.announce);
      this.rotationDueAt = undefined;
      this.rotationAnchor = undefined;
      this.rotationInterval = undefined;
      this.rotationDeferredTo = undefined;
      return;
    }
    const intervalMs = interval * 1000;
    if (this.rotationInterval !== interval) {
      this.rotationInterval = interval;
      this.rotationAnchor = firstRotationDue(this.node, this.clock.now().getTime(), intervalMs);
    }
    const last = this.lastRotation ? new Date(this.lastRotation).getTime() : 0;
    // Switch every interval; announce rotationLead before the switch.
    const switchDue = Math.max(
      last + intervalMs,
      this.rotationAnchor ?? 0,
      this.rotationDeferredTo ?? 0,
    );
    this.armRotation(switchDue - this.lead());
  }

  private lead(): number {
    return this.opts.rotationLeadMs ?? 5000;
  }

  private armRotation(announceAt: number): void {
    if (this.rotationDueAt === announceAt) return;
    this.rotationDueAt = announceAt;
    this.at(TIMER.announce, new Date(announceAt), () => this.rotate());
  }

  /** A clashing peer switch: try again so that ours comes ROTATION_GUARD_MS after it. */
  private deferRotation(clash: Announcement): void {
    // A few ms more, as timers may fire a millisecond early.
    // A peer switches a little after its announced time (4–300 ms measured under load): aim
    // far enough past it that the retry does not land inside the guard again.
    this.rotationDeferredTo =
      clash.switchAt.getTime() + ROTATION_GUARD_MS + ROTATION_RETRY_SLACK_MS;
    this.log.info(
      { peer: clash.node, peerSwitchAt: clash.switchAt.toISOString() },
      "deferring key rotation: a peer switches at nearly the same time",
    );
    this.armRotation(this.rotationDeferredTo - this.lead());
  }

  private async rotate(): Promise<void> {
    const keys = this.opts.keys;
    const spec = this.desired;
    if (!keys || !spec?.wireguard || keys.next) return;
    const ifname = this.opts.interfaceName ?? spec.wireguard.interfaceName;
    const switchAt = new Date(this.clock.now().getTime() + this.lead());
    const clash = rotationClash(
      this.node,
      spec.wireguard.profile,
      this.peerEntries(this.ownKeys(ifname)),
      switchAt,
      false,
    );
    if (clash) return this.deferRotation(clash);
    keys.prepare(switchAt);
    this.log.info({ switchAt: switchAt.toISOString() }, "announcing the next WireGuard key");
    if (this.status?.wireguard) {
      await this.publish({
        ...this.status,
        wireguard: {
          ...this.status.wireguard,
          nextPublicKey: keys.next!.publicKey,
          // Milliseconds kept: peers time their fallback from it.
          nextKeySwitchTime: switchAt.toISOString(),
        },
      });
    }
    this.at(TIMER.ownSwitch, switchAt, () => this.switchOwnKey(ifname));
  }

  /**
   * Both ends announced switches that clash (each announced before it saw the other's): the
   * one that goes second withdraws its announcement — nobody has configured the key yet —
   * and tries again after the other's switch.
   */
  private async yieldOnClash(): Promise<void> {
    const next = this.opts.keys?.next;
    const spec = this.desired;
    if (!next || !spec?.wireguard || this.clock.now() >= next.switchAt) return;
    const ifname = this.opts.interfaceName ?? spec.wireguard.interfaceName;
    const clash = rotationClash(
      this.node,
      spec.wireguard.profile,
      this.peerEntries(this.ownKeys(ifname)),
      next.switchAt,
      true,
    );
    if (!clash) return;
    this.cancel(TIMER.ownSwitch);
    this.opts.keys!.cancel();
    await this.publishAnnouncementEnd({});
    this.deferRotation(clash);
  }

  /**
   * The switch itself: the new private key goes to the tunnel first, then out in our status as
   * current — the signal peers wait for before they move to it (see peerKeyAt), so that no
   * packet on either session meets a peer that no longer or not yet accepts it.
   */
  private async switchOwnKey(ifname: string): Promise<void> {
    const keys = this.opts.keys!;
    keys.commit(ifname);
    await this.fastSwitch();
    this.lastRotation = this.clock.now().toISOString();
    this.opts.onRotation?.();
    this.log.info("switched to the announced WireGuard key");
    await this.publishAnnouncementEnd({
      publicKey: keys.current(ifname).publicKey,
      lastRotationTime: this.lastRotation,
    });
    this.appliedKey = undefined;
    await this.converge();
  }

  /** Our status without the key announcement (withdrawn, or switched with `update`). */
  private async publishAnnouncementEnd(
    update: Partial<NonNullable<NodeNetworkStateStatus["wireguard"]>>,
  ): Promise<void> {
    if (!this.status?.wireguard) return;
    const { nextPublicKey: _n, nextKeySwitchTime: _t, ...wireguard } = this.status.wireguard;
    await this.publish({ ...this.status, wireguard: { ...wireguard, ...update } });
  }

  private scheduleRetry(): void {
    const delay = Math.min((this.opts.retryMs ?? 1000) * 2 ** this.failures++, 30_000);
    this.after(TIMER.retry, delay, () => this.converge());
  }

  private scheduleDrift(spec: NodeDatapath): void {
    const ms = parseDuration(spec.drift?.checkInterval ?? "30s");
    this.after(TIMER.drift, ms, () => this.driftCheck());
  }

  /**
   * One drift check, and always the next one, armed as it starts: checks start every interval
   * whatever they take; one that overruns is followed right away (the serial chain queues the
   * fired timer), never overlapped. A kernel read or a heal that throws is reported (Degraded,
   * DriftCheckFailed) and checked again at the next interval. A spec replaced meanwhile re-arms
   * the timer when it is applied.
   */
  private async driftCheck(): Promise<void> {
    const spec = this.desired;
    if (!spec || this.appliedKey === undefined) return;
    this.scheduleDrift(spec);
    try {
      await this.compareAndHeal(spec);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ error: message }, "drift check failed");
      await this.publish(
        statusAfterDriftCheckFailed(this.status, message, this.generation, this.clock.now()),
      );
    }
  }

  private async compareAndHeal(spec: NodeDatapath): Promise<void> {
    const wg = this.wireguardContext(spec);
    const desired = expectedState(
      planDatapath(
        spec,
        this.opts.driver.devicesFor(spec),
        this.applyContext(wg),
        this.opts.driver.endpointDevicesFor(this.applyContext(wg)),
      ),
    );
    const actual = await this.opts.driver.read();
    const items = diffDatapath(desired, actual);
    this.log.debug(
      {
        desired: { ...desired, wireguard: desired.wireguard?.ifname },
        actualWg: actual.wireguard?.ifname,
        items: items.length,
      },
      "drift check",
    );
    let healed = false;
    if (items.length > 0) {
      const mode = spec.drift?.mode ?? "Heal";
      this.log.warn({ drift: items.map((i) => i.detail), mode }, "drift detected");
      if (mode === "Heal") {
        await this.opts.driver.apply(spec, this.applyContext(wg));
        healed = true;
        // Re-added peers start over: they get the first-handshake grace again.
        this.configuredAt.clear();
        if (wg) this.notePeersConfigured(wg.ctx.peers);
      }
      this.opts.onDrift?.(items, healed);
    }
    const status = statusAfterDriftCheck(
      this.status,
      { items, healed },
      this.generation,
      this.clock.now(),
    );
    const degradedBefore = this.status?.conditions?.find((c) => c.type === "Degraded")?.reason;
    const degradedNow = status.conditions?.find((c) => c.type === "Degraded")?.reason;
    if (
      items.length > 0 ||
      status.drift?.drifted !== this.status?.drift?.drifted ||
      degradedBefore !== degradedNow
    )
      await this.publish(status);
    else this.status = status;
  }

  /**
   * The periodic check of what only time changes (WireGuard sessions, peer counts held back
   * from a join): written only when a reader would see a difference. Liveness is the Lease's
   * job, so a quiet node writes nothing here.
   */
  private async heartbeat(): Promise<void> {
    if (!this.status || !this.desired) return;
    const wireguard = await this.tunnelStatus();
    if (this.policy && this.opts.driver.policyAudit)
      this.wouldDrop = wouldDropByPolicy(this.policy, await this.opts.driver.policyAudit());
    const policy = this.policyStatus(undefined);
    const next = {
      ...this.status,
      ...(wireguard ? { wireguard } : {}),
      ...(policy ? { policy } : {}),
    };
    if (reportHash(next) === this.publishedHash) {
      this.status = next;
      return;
    }
    await this.publish({ ...next, heartbeatTime: formatTime(this.clock.now()) });
  }

  /** Since when each peer key is configured: a new one gets a grace for its first handshake. */
  private notePeersConfigured(peers: readonly { publicKey: string }[]): void {
    const keys = new Set(peers.map((p) => p.publicKey));
    for (const k of this.configuredAt.keys()) if (!keys.has(k)) this.configuredAt.delete(k);
    for (const k of keys)
      if (!this.configuredAt.has(k)) this.configuredAt.set(k, this.clock.now().getTime());
  }

  /** The sessions as the tunnel reports them, folded into the status (rides on the heartbeat). */
  private async tunnelStatus(): Promise<NodeNetworkStateStatus["wireguard"]> {
    const current = this.status?.wireguard;
    const spec = this.desired;
    const wg = spec ? this.wireguardContext(spec) : undefined;
    if (!current || !wg || !this.opts.driver.wireguardPeers) return current;
    const onDevice = await this.opts.driver.wireguardPeers();
    if (!onDevice) return current;
    // Planned peers only: a rotated-away key stays on the device a few seconds to drain.
    const peers = onDevice.filter((p) => wg.nodeOf.has(p.publicKey));
    const health = tunnelHealth(
      peers,
      wg.nodeOf,
      this.configuredAt,
      this.clock.now(),
      wg.keepaliveSeconds,
    );
    this.opts.onTunnel?.(peers, wg.nodeOf, health);
    this.tunnel = {
      peersHandshaken: health.handshaken,
      peersWithoutSession: health.problemCount,
      peerProblems: health.problems,
    };
    return { ...current, ...this.tunnel };
  }

  /**
   * Writes the report, and the peer data first when it changed (a key announcement must reach
   * peers as early as possible). A failed write (the operator has not created the node's
   * objects yet, the API server is away) is made again with backoff, with the latest status.
   */
  private async publish(status: NodeNetworkStateStatus): Promise<void> {
    this.status = status;
    this.cancel(TIMER.republish);
    try {
      const peer = this.peerStatus(status);
      const peerHash = contentHash(peer);
      if (this.opts.writePeer && peerHash !== this.publishedPeerHash) {
        await withinTime(this.opts.writePeer(peer), this.writeTimeoutMs, "NodePeer status write");
        this.publishedPeerHash = peerHash;
      }
      this.publishedHash = reportHash(status);
      await withinTime(
        this.opts.writeStatus(status),
        this.writeTimeoutMs,
        "NodeNetworkState status write",
      );
      this.publishFailures = 0;
    } catch (err) {
      const delay = Math.min(1000 * 2 ** this.publishFailures++, 30_000);
      this.after(TIMER.republish, delay, async () => {
        if (this.status) await this.publish(this.status);
      });
      throw err;
    }
  }

  /** Pure given the desired state: what this node's peers need from a report. */
  private peerStatus(status: NodeNetworkStateStatus): NodePeerStatus {
    const wg = status.wireguard;
    const desired = this.desired?.wireguard;
    if (!wg?.publicKey || !desired) return {};
    return {
      profile: desired.profile,
      publicKey: wg.publicKey,
      ...(this.opts.nodeIP ? { nodeIP: this.opts.nodeIP, listenPort: desired.listenPort } : {}),
      ...(desired.nodeEncryption ? { nodeEncryption: true } : {}),
      ...(wg.nextPublicKey && wg.nextKeySwitchTime
        ? { nextPublicKey: wg.nextPublicKey, nextKeySwitchTime: wg.nextKeySwitchTime }
        : {}),
      ...(wg.lastRotationTime ? { lastRotationTime: wg.lastRotationTime } : {}),
    };
  }
}

/**
 * How long a status write may take before it counts as failed (and is retried with backoff):
 * a request that never answers (a connection the server dropped silently) must not stall the
 * agent's serial chain, and with it every apply, drift check and key rotation.
 */
export const WRITE_TIMEOUT_MS = 15_000;

function withinTime<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // Not unref'd: the write itself is pending work; the timer goes when the race settles.
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000}s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A report's content without the time it was made. */
function reportHash(status: NodeNetworkStateStatus): string {
  const { heartbeatTime: _t, ...rest } = status;
  return contentHash(rest);
}
