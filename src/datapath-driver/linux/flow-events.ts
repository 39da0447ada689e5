/**
 * The flow events of one node, read from its pinned ring buffer (maps/flow_events under the
 * node's pin directory) without loading the object: the driver loads and pins, this reads. The
 * pin is opened when it appears and reopened when it is replaced (a teardown and a new load
 * make a new map; the old one would stay silent).
 *
 * libbpf's consumer mmaps the ring (its data pages read-only, the consumer position
 * read-write) and keeps the consumer position in the map itself: an agent that restarts reads
 * on from where the last one stopped, so events written while no agent ran are not lost (up to
 * what the ring holds).
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { u32 } from "../maps/bytes.js";
import { FLOW_EVENT_SIZE, FLOW_EVENTS_LOST_MAP, FLOW_EVENTS_MAP } from "../maps/flow-events.js";
import { sumPerCpu } from "../maps/policy.js";
import { possibleCpuCount } from "./bpf-datapath.js";
import {
  BPF_MAP_TYPE_RINGBUF,
  closeFd,
  mapInfo,
  mapLookup,
  objGet,
  RingBufferConsumer,
} from "./libbpf.js";

interface OpenRing {
  fd: number;
  /** The pin's inode when opened: another inode is another map. */
  ino: number;
  consumer: RingBufferConsumer;
  /** The lost-events counter pinned beside it (-1: none). */
  lostFd: number;
}

/** Reads between two looks at the pin (a stat): a replaced ring is found within a second. */
const RECHECK_EVERY = 10;

export class PinnedFlowEvents {
  private ring: OpenRing | undefined;
  private readonly cpus = possibleCpuCount();
  private reads = 0;

  constructor(private readonly pinDir: string) {}

  private pin(name: string): string {
    return join(this.pinDir, "maps", name);
  }

  /**
   * The ring as pinned now (opened or reopened), or undefined when there is none. The pin is
   * looked at every RECHECK_EVERY reads: an idle read is then one ring_buffer__consume, which
   * reads the shared positions and makes no system call.
   */
  private current(): OpenRing | undefined {
    if (this.ring && this.reads++ % RECHECK_EVERY !== 0) return this.ring;
    const path = this.pin(FLOW_EVENTS_MAP);
    let ino: number;
    try {
      ino = statSync(path).ino;
    } catch {
      this.closeRing();
      return undefined;
    }
    if (this.ring?.ino === ino) return this.ring;
    this.closeRing();
    const fd = objGet(path);
    try {
      const info = mapInfo(fd);
      if (info.type !== BPF_MAP_TYPE_RINGBUF)
        throw new Error(`${path} is a map of type ${info.type}, not a ring buffer`);
      const lostPin = this.pin(FLOW_EVENTS_LOST_MAP);
      const lostFd = existsSync(lostPin) ? objGet(lostPin) : -1;
      this.ring = { fd, ino, consumer: new RingBufferConsumer(fd, FLOW_EVENT_SIZE), lostFd };
      return this.ring;
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** At most max records, each handed to sink as a copy; undefined when there is no ring. */
  read(max: number, sink: (record: Buffer) => void): number | undefined {
    const ring = this.current();
    if (!ring) return undefined;
    let n = 0;
    return ring.consumer.consume((record) => {
      sink(record);
      return ++n < max;
    });
  }

  /**
   * Records the programs found no room for, summed over CPUs, in the map pinned beside the
   * ring read last (0 before the first load).
   */
  lost(): number {
    const fd = this.ring?.lostFd ?? -1;
    if (fd < 0) return 0;
    const v = mapLookup(fd, u32(0), 8 * this.cpus);
    return v ? sumPerCpu(v) : 0;
  }

  private closeRing(): void {
    if (!this.ring) return;
    this.ring.consumer.close();
    closeFd(this.ring.fd);
    closeFd(this.ring.lostFd);
    this.ring = undefined;
  }

  close(): void {
    this.closeRing();
  }
}
