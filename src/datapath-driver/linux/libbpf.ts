/**
 * koffi bindings to Debian's libbpf.so.1 (1.1.2) and libc: only what the Netloom datapath uses.
 *
 * Error conventions of libbpf 1.x: functions returning a pointer return NULL and set errno;
 * functions returning int return a negative errno. Every wrapper turns a failure into a
 * LibbpfError naming the call, its argument and the errno text.
 *
 * The libraries load on first use, so importing this module works on machines without libbpf.
 * Struct layouts (bpf_tc_hook, bpf_tc_opts, bpf_prog_info, bpf_link_info) are written by hand
 * for LP64 (x86_64, arm64) and were checked with offsetof() against libbpf 1.1.2's headers.
 *
 * Network namespaces: if_nametoindex, bpf_link_create (tcx) and the bpf_tc_* netlink calls act
 * in the calling thread's network namespace. Never read ifindex from /sys/class/net: under
 * `nsenter --net` /sys still shows the host's interfaces.
 */
import { closeSync, openSync } from "node:fs";
import koffi from "koffi";

/**
 * enum bpf_attach_type values for tcx, read from this kernel's BTF:
 * `bpftool btf dump file /sys/kernel/btf/vmlinux | grep BPF_TCX` → BPF_TCX_INGRESS val=46,
 * BPF_TCX_EGRESS val=47 (Linux 6.6+). libbpf 1.1.2 predates tcx and has no names for them;
 * bpf_link_create / bpf_prog_query pass them through to the kernel unchanged.
 */
export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;
/** enum bpf_link_type BPF_LINK_TYPE_TCX (kernel BTF). */
export const BPF_LINK_TYPE_TCX = 11;

/** enum bpf_tc_attach_point (libbpf.h). */
export const BPF_TC_INGRESS = 1;
export const BPF_TC_EGRESS = 2;
/** enum bpf_tc_flags (libbpf.h). */
export const BPF_TC_F_REPLACE = 1;

/** bpf_map_update_elem flags (uapi). */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export const ENOENT = 2;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EOPNOTSUPP = 95;
export const ENOLINK = 67;

/** Raised for every failed libbpf/libc call: `call` names it, `errno` is positive. */
export class LibbpfError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    detail?: string,
    /** libbpf's own messages about the failure (verifier log, netlink extack). */
    readonly log?: string,
  ) {
    super(
      `${call}${detail ? ` (${detail})` : ""}: ${strerror(errno)} (errno ${errno})${log ? `\nlibbpf log:\n${log}` : ""}`,
    );
    this.name = "LibbpfError";
  }
}

/** Opaque C pointers (koffi 3 represents them as bigint; NULL may come back as null). */
export type CPtr = bigint;
type RawPtr = bigint | null;
type Buf = Buffer | null;

interface Native {
  // libbpf: object/map/program handling
  bpf_object__open_file(path: string, opts: null): RawPtr;
  bpf_object__next_map(obj: CPtr, prev: CPtr | null): RawPtr;
  bpf_map__name(map: CPtr): string | null;
  bpf_map__set_pin_path(map: CPtr, path: string): number;
  bpf_map__fd(map: CPtr): number;
  bpf_object__load(obj: CPtr): number;
  bpf_object__find_program_by_name(obj: CPtr, name: string): RawPtr;
  bpf_program__fd(prog: CPtr): number;
  bpf_object__close(obj: CPtr): void;
  // libbpf: low-level syscall wrappers
  bpf_link_create(progFd: number, targetFd: number, attachType: number, opts: null): number;
  bpf_link_update(linkFd: number, newProgFd: number, opts: null): number;
  bpf_link_detach(linkFd: number): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buf, nextKey: Buffer): number;
  bpf_prog_query(
    targetFd: number,
    type: number,
    queryFlags: number,
    attachFlags: Buffer,
    progIds: Buffer,
    progCnt: Buffer,
  ): number;
  bpf_prog_get_fd_by_id(id: number): number;
  // libbpf: tc (clsact) API
  bpf_tc_hook_create(hook: Buffer): number;
  bpf_tc_attach(hook: Buffer, opts: Buffer): number;
  bpf_tc_detach(hook: Buffer, opts: Buffer): number;
  bpf_tc_query(hook: Buffer, opts: Buffer): number;
  // libbpf: BPF ring buffers (consumer side)
  ring_buffer__new(mapFd: number, sampleCb: CPtr, ctx: null, opts: null): RawPtr;
  ring_buffer__consume(rb: CPtr): number;
  ring_buffer__free(rb: CPtr): void;
  // libc
  if_nametoindex(name: string): number;
  if_indextoname(ifindex: number, name: Buffer): RawPtr;
  close(fd: number): number;
  strerror(errnum: number): string | null;
  setns(fd: number, nstype: number): number;
  vsnprintf(buf: Buffer, size: number, fmt: CPtr, ap: CPtr): number;
}

let native: Native | undefined;

type Fn = (...args: never[]) => unknown;

function bind(): Native {
  if (native) return native;
  const bpf = koffi.load("libbpf.so.1");
  const libc = koffi.load("libc.so.6");
  const b = (proto: string): Fn => bpf.func(proto) as unknown as Fn;
  const c = (proto: string): Fn => libc.func(proto) as unknown as Fn;
  native = {
    bpf_object__open_file: b("void *bpf_object__open_file(const char *path, void *opts)"),
    bpf_object__next_map: b("void *bpf_object__next_map(void *obj, void *prev)"),
    bpf_map__name: b("const char *bpf_map__name(void *map)"),
    bpf_map__set_pin_path: b("int bpf_map__set_pin_path(void *map, const char *path)"),
    bpf_map__fd: b("int bpf_map__fd(void *map)"),
    bpf_object__load: b("int bpf_object__load(void *obj)"),
    bpf_object__find_program_by_name: b(
      "void *bpf_object__find_program_by_name(void *obj, const char *name)",
    ),
    bpf_program__fd: b("int bpf_program__fd(void *prog)"),
    bpf_object__close: b("void bpf_object__close(void *obj)"),
    bpf_link_create: b(
      "int bpf_link_create(int prog_fd, int target_fd, uint32_t attach_type, void *opts)",
    ),
    bpf_link_update: b("int bpf_link_update(int link_fd, int new_prog_fd, void *opts)"),
    bpf_link_detach: b("int bpf_link_detach(int link_fd)"),
    bpf_obj_pin: b("int bpf_obj_pin(int fd, const char *pathname)"),
    bpf_obj_get: b("int bpf_obj_get(const char *pathname)"),
    bpf_obj_get_info_by_fd: b("int bpf_obj_get_info_by_fd(int bpf_fd, void *info, void *info_len)"),
    bpf_map_update_elem: b(
      "int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)",
    ),
    bpf_map_lookup_elem: b("int bpf_map_lookup_elem(int fd, const void *key, void *value)"),
    bpf_map_delete_elem: b("int bpf_map_delete_elem(int fd, const void *key)"),
    bpf_map_get_next_key: b("int bpf_map_get_next_key(int fd, const void *key, void *next_key)"),
    bpf_prog_query: b(
      "int bpf_prog_query(int target_fd, uint32_t type, uint32_t query_flags, void *attach_flags, void *prog_ids, void *prog_cnt)",
    ),
    bpf_prog_get_fd_by_id: b("int bpf_prog_get_fd_by_id(uint32_t id)"),
    bpf_tc_hook_create: b("int bpf_tc_hook_create(void *hook)"),
    bpf_tc_attach: b("int bpf_tc_attach(const void *hook, void *opts)"),
    bpf_tc_detach: b("int bpf_tc_detach(const void *hook, const void *opts)"),
    bpf_tc_query: b("int bpf_tc_query(const void *hook, void *opts)"),
    ring_buffer__new: b(
      "void *ring_buffer__new(int map_fd, void *sample_cb, void *ctx, const void *opts)",
    ),
    ring_buffer__consume: b("int ring_buffer__consume(void *rb)"),
    ring_buffer__free: b("void ring_buffer__free(void *rb)"),
    if_nametoindex: c("unsigned int if_nametoindex(const char *ifname)"),
    if_indextoname: c("void *if_indextoname(unsigned int ifindex, char *ifname)"),
    close: c("int close(int fd)"),
    strerror: c("const char *strerror(int errnum)"),
    setns: c("int setns(int fd, int nstype)"),
    // va_list travels as a pointer (x86_64: __va_list_tag[1] decays; checked on x86_64 only).
    vsnprintf: c("int vsnprintf(char *buf, size_t size, void *fmt, void *ap)"),
  } as unknown as Native;
  // Route libbpf's messages (verifier log, tc netlink errors) through libbpfPrint.
  const printFn = koffi.proto("int netloom_libbpf_print(int level, void *fmt, void *ap)");
  const setPrint = bpf.func("void *libbpf_set_print(void *fn)") as unknown as (fn: CPtr) => CPtr;
  const n = native;
  const message = Buffer.alloc(8192);
  setPrint(
    koffi.register((level: number, fmt: CPtr, ap: CPtr): number => {
      const len = n.vsnprintf(message, message.length, fmt, ap);
      const text = message.toString("utf8", 0, Math.max(0, Math.min(len, message.length - 1)));
      libbpfPrint(level, text);
      return 0;
    }, koffi.pointer(printFn)),
  );
  return native;
}

// ---------------------------------------------------------------------------------------------
// libbpf's log

export type LibbpfLogLevel = "warn" | "info" | "debug";
const LEVELS: LibbpfLogLevel[] = ["warn", "info", "debug"];

/** Default sink: like libbpf's own printer, warn and info to stderr. */
let logSink: ((level: LibbpfLogLevel, message: string) => void) | undefined = (level, message) => {
  if (level !== "debug") process.stderr.write(message.endsWith("\n") ? message : `${message}\n`);
};
let quietDepth = 0;
let capture: string[] | undefined;

/** Sends libbpf's messages to sink (undefined: drop them). Lines keep libbpf's own text. */
export function setLibbpfLog(sink: ((level: LibbpfLogLevel, message: string) => void) | undefined) {
  logSink = sink;
}

function libbpfPrint(levelNum: number, text: string): void {
  const level = LEVELS[levelNum] ?? "debug";
  if (capture && level !== "debug") capture.push(text.trimEnd());
  if (quietDepth === 0) logSink?.(level, text);
}

/**
 * Runs a libbpf call whose failure may be an expected answer (EEXIST, ENOENT) without logging
 * libbpf's messages; they come back in `log` for the error of an unexpected failure.
 */
function quiet(fn: () => number): { ret: number; log: string } {
  const lines: string[] = [];
  const outer = capture;
  capture = lines;
  quietDepth++;
  try {
    return { ret: fn(), log: lines.join("; ") };
  } finally {
    quietDepth--;
    capture = outer;
    outer?.push(...lines);
  }
}

function strerror(errno: number): string {
  try {
    return bind().strerror(errno) ?? `errno ${errno}`;
  } catch {
    return `errno ${errno}`;
  }
}

/** errno after a call (koffi saves it right after the native call returns). */
function lastErrno(): number {
  return koffi.errno() || EINVAL;
}

function isNull(p: RawPtr): p is null {
  return p === null || p === 0n;
}

/** Checks an int result of libbpf (negative errno) and returns it. */
function checkInt(call: string, ret: number, detail?: string): number {
  if (ret < 0) throw new LibbpfError(call, -ret, detail);
  return ret;
}

// ---------------------------------------------------------------------------------------------
// Objects, maps, programs

export function objectOpenFile(path: string): CPtr {
  const obj = bind().bpf_object__open_file(path, null);
  if (isNull(obj)) throw new LibbpfError("bpf_object__open_file", lastErrno(), path);
  return obj;
}

export function objectMaps(obj: CPtr): CPtr[] {
  const maps: CPtr[] = [];
  let prev: CPtr | null = null;
  for (;;) {
    const m: RawPtr = bind().bpf_object__next_map(obj, prev);
    if (isNull(m)) return maps;
    maps.push(m);
    prev = m;
  }
}

export function mapName(map: CPtr): string {
  const name = bind().bpf_map__name(map);
  if (name === null) throw new LibbpfError("bpf_map__name", EINVAL);
  return name;
}

export function mapSetPinPath(map: CPtr, path: string): void {
  checkInt("bpf_map__set_pin_path", bind().bpf_map__set_pin_path(map, path), path);
}

export function mapFd(map: CPtr): number {
  return checkInt("bpf_map__fd", bind().bpf_map__fd(map));
}

/** Loads maps and programs; a failure's error carries the tail of libbpf's log (verifier). */
export function objectLoad(obj: CPtr, detail?: string): void {
  const lines: string[] = [];
  capture = lines;
  let ret: number;
  try {
    ret = bind().bpf_object__load(obj);
  } finally {
    capture = undefined;
  }
  if (ret < 0) {
    const log = lines.join("\n").split("\n").slice(-40).join("\n");
    throw new LibbpfError("bpf_object__load", -ret, detail, log || undefined);
  }
}

export function findProgram(obj: CPtr, name: string): CPtr {
  const p = bind().bpf_object__find_program_by_name(obj, name);
  if (isNull(p)) throw new LibbpfError("bpf_object__find_program_by_name", lastErrno(), name);
  return p;
}

export function programFd(prog: CPtr): number {
  return checkInt("bpf_program__fd", bind().bpf_program__fd(prog));
}

/** Closes the object, its map fds and program fds. Pinned maps and links stay. */
export function objectClose(obj: CPtr): void {
  bind().bpf_object__close(obj);
}

// ---------------------------------------------------------------------------------------------
// Links, pins, fds

/** bpf_link_create; for tcx targetFd is the ifindex (target_ifindex shares the field). */
export function linkCreate(progFd: number, target: number, attachType: number): number {
  return checkInt(
    "bpf_link_create",
    bind().bpf_link_create(progFd, target, attachType, null),
    `target ${target}, attach type ${attachType}`,
  );
}

/** Atomically swaps the program behind a link. */
export function linkUpdate(linkFd: number, progFd: number): void {
  checkInt("bpf_link_update", bind().bpf_link_update(linkFd, progFd, null));
}

/** Detaches a link from its hook even while other fds or pins still reference it. */
export function linkDetach(linkFd: number): void {
  checkInt("bpf_link_detach", bind().bpf_link_detach(linkFd));
}

export function objPin(fd: number, path: string): void {
  checkInt("bpf_obj_pin", bind().bpf_obj_pin(fd, path), path);
}

export function objGet(path: string): number {
  return checkInt("bpf_obj_get", bind().bpf_obj_get(path), path);
}

export function closeFd(fd: number): void {
  if (fd >= 0) bind().close(fd);
}

/** Program id of a program fd (struct bpf_prog_info.id at offset 4). */
export function progIdOfFd(progFd: number): number {
  const info = Buffer.alloc(232);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  checkInt("bpf_obj_get_info_by_fd", bind().bpf_obj_get_info_by_fd(progFd, info, len), "program");
  return info.readUInt32LE(4);
}

export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** tcx links: the device (0 once the device is gone), and the attach type. */
  ifindex: number;
  attachType: number;
}

/** struct bpf_link_info: type@0 id@4 prog_id@8, union@16 (tcx: ifindex@16 attach_type@20). */
export function linkInfo(linkFd: number): LinkInfo {
  const info = Buffer.alloc(64);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  checkInt("bpf_obj_get_info_by_fd", bind().bpf_obj_get_info_by_fd(linkFd, info, len), "link");
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    progId: info.readUInt32LE(8),
    ifindex: info.readUInt32LE(16),
    attachType: info.readUInt32LE(20),
  };
}

/** struct bpf_map_info: type@0 id@4 key_size@8 value_size@12 max_entries@16. */
export function mapInfo(mapFd: number): { type: number; id: number; maxEntries: number } {
  const info = Buffer.alloc(96);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  checkInt("bpf_obj_get_info_by_fd", bind().bpf_obj_get_info_by_fd(mapFd, info, len), "map");
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    maxEntries: info.readUInt32LE(16),
  };
}

// ---------------------------------------------------------------------------------------------
// BPF ring buffers: libbpf's consumer (it mmaps the map and keeps the consumer position)

/** enum bpf_map_type BPF_MAP_TYPE_RINGBUF (uapi). */
export const BPF_MAP_TYPE_RINGBUF = 27;

/**
 * A ring buffer opened for reading. `consume` hands each record to the sink as a copy (the
 * ring's memory is reused once the callback returns) and never blocks: libbpf's
 * ring_buffer__consume reads what is committed and returns. The sink returns false to stop
 * early (a budget): the records after it stay in the ring for the next call.
 */
export class RingBufferConsumer {
  private rb: CPtr | undefined;
  private readonly callback: CPtr;
  private sink: ((record: Buffer) => boolean) | undefined;
  private error: unknown;

  constructor(mapFd: number, recordSize: number) {
    const n = bind();
    const record = koffi.array("uint8_t", recordSize);
    this.callback = koffi.register((_ctx: CPtr, data: CPtr, size: number | bigint): number => {
      const len = Number(size);
      try {
        // koffi copies the record out of the ring into a Uint8Array. One of another size
        // (another object version) is handed on as it is, for the sink to count.
        const bytes = koffi.decode(
          data,
          len === recordSize ? record : koffi.array("uint8_t", len),
        ) as Uint8Array;
        const more = this.sink?.(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        return more === false ? STOP : 0;
      } catch (e) {
        this.error = e;
        return STOP;
      }
    }, koffi.pointer(ringBufferSampleFn()));
    const rb = n.ring_buffer__new(mapFd, this.callback, null, null);
    if (isNull(rb)) {
      koffi.unregister(this.callback);
      throw new LibbpfError("ring_buffer__new", lastErrno(), `map fd ${mapFd}`);
    }
    this.rb = rb;
  }

  /** Hands the committed records to sink; the number handed (a stop counts the last one). */
  consume(sink: (record: Buffer) => boolean): number {
    if (this.rb === undefined) throw new Error("ring buffer consumer is closed");
    let handed = 0;
    this.sink = (r) => {
      handed++;
      return sink(r);
    };
    this.error = undefined;
    try {
      const ret = bind().ring_buffer__consume(this.rb);
      if (this.error !== undefined) throw this.error;
      if (ret < 0 && ret !== STOP) throw new LibbpfError("ring_buffer__consume", -ret);
      return handed;
    } finally {
      this.sink = undefined;
    }
  }

  close(): void {
    if (this.rb === undefined) return;
    bind().ring_buffer__free(this.rb);
    this.rb = undefined;
    koffi.unregister(this.callback);
  }
}

/** What the sample callback returns to stop ring_buffer__consume (-ECANCELED). */
const STOP = -125;

let sampleFn: ReturnType<typeof koffi.proto> | undefined;
function ringBufferSampleFn(): ReturnType<typeof koffi.proto> {
  sampleFn ??= koffi.proto("int netloom_ringbuf_sample(void *ctx, void *data, size_t size)");
  return sampleFn;
}

// ---------------------------------------------------------------------------------------------
// Map elements (keys and values are raw bytes in the kernel's layout)

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  checkInt("bpf_map_update_elem", bind().bpf_map_update_elem(fd, key, value, BigInt(flags)));
}

/** The value for key, or undefined when the key is absent. */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined {
  const value = Buffer.alloc(valueSize);
  const ret = bind().bpf_map_lookup_elem(fd, key, value);
  if (ret === -ENOENT) return undefined;
  checkInt("bpf_map_lookup_elem", ret);
  return value;
}

/** Deletes key; false when it was absent. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const ret = bind().bpf_map_delete_elem(fd, key);
  if (ret === -ENOENT) return false;
  checkInt("bpf_map_delete_elem", ret);
  return true;
}

/** Every key of a hash/LPM map (bpf_map_get_next_key from NULL until ENOENT). */
export function mapKeys(fd: number, keySize: number): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const ret = bind().bpf_map_get_next_key(fd, prev, next);
    if (ret === -ENOENT) return keys;
    checkInt("bpf_map_get_next_key", ret);
    keys.push(next);
    prev = next;
  }
}

// ---------------------------------------------------------------------------------------------
// Queries

/**
 * Program ids attached at (target, attachType), in run order. For tcx the target is the
 * ifindex (query.target_ifindex shares target_fd's field).
 */
export function progQuery(target: number, attachType: number, max = 64): number[] {
  const attachFlags = Buffer.alloc(4);
  const ids = Buffer.alloc(4 * max);
  const cnt = Buffer.alloc(4);
  cnt.writeUInt32LE(max);
  checkInt(
    "bpf_prog_query",
    bind().bpf_prog_query(target, attachType, 0, attachFlags, ids, cnt),
    `target ${target}, attach type ${attachType}`,
  );
  const n = Math.min(cnt.readUInt32LE(0), max);
  return Array.from({ length: n }, (_, i) => ids.readUInt32LE(4 * i));
}

/** The raw return of bpf_prog_query for a capability probe (0 or a negative errno). */
export function progQueryRaw(target: number, attachType: number): number {
  const attachFlags = Buffer.alloc(4);
  const ids = Buffer.alloc(4 * 8);
  const cnt = Buffer.alloc(4);
  cnt.writeUInt32LE(8);
  return bind().bpf_prog_query(target, attachType, 0, attachFlags, ids, cnt);
}

export function progFdById(id: number): number {
  return checkInt("bpf_prog_get_fd_by_id", bind().bpf_prog_get_fd_by_id(id), `id ${id}`);
}

// ---------------------------------------------------------------------------------------------
// tc (clsact) API: struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; u32 parent; }
// (24 bytes: ifindex@8 attach_point@12 parent@16) and struct bpf_tc_opts { size_t sz;
// int prog_fd; u32 flags; u32 prog_id; u32 handle; u32 priority; } (32 bytes: prog_fd@8
// flags@12 prog_id@16 handle@20 priority@24).

function tcHook(ifindex: number, attachPoint: number): Buffer {
  const hook = Buffer.alloc(24);
  hook.writeBigUInt64LE(24n, 0);
  hook.writeInt32LE(ifindex, 8);
  hook.writeUInt32LE(attachPoint, 12);
  return hook;
}

function tcOpts(fields: {
  progFd?: number;
  flags?: number;
  handle: number;
  priority: number;
}): Buffer {
  const opts = Buffer.alloc(32);
  opts.writeBigUInt64LE(32n, 0);
  opts.writeInt32LE(fields.progFd ?? 0, 8);
  opts.writeUInt32LE(fields.flags ?? 0, 12);
  opts.writeUInt32LE(fields.handle, 20);
  opts.writeUInt32LE(fields.priority, 24);
  return opts;
}

/** Creates the clsact qdisc; "exists" when it is already there (EEXIST). */
export function tcHookCreate(ifindex: number, attachPoint: number): "created" | "exists" {
  const { ret, log } = quiet(() => bind().bpf_tc_hook_create(tcHook(ifindex, attachPoint)));
  if (ret === -EEXIST) return "exists";
  checkInt("bpf_tc_hook_create", ret, `ifindex ${ifindex}${log ? `; ${log}` : ""}`);
  return "created";
}

/** Attaches a cls_bpf filter (direct-action); returns the attached program id. */
export function tcAttach(
  ifindex: number,
  attachPoint: number,
  progFd: number,
  handle: number,
  priority: number,
  flags = BPF_TC_F_REPLACE,
): number {
  const opts = tcOpts({ progFd, flags, handle, priority });
  checkInt(
    "bpf_tc_attach",
    bind().bpf_tc_attach(tcHook(ifindex, attachPoint), opts),
    `ifindex ${ifindex}, handle ${handle}, priority ${priority}`,
  );
  return opts.readUInt32LE(16);
}

/** Removes the filter at (handle, priority); false when there was none. */
export function tcDetach(
  ifindex: number,
  attachPoint: number,
  handle: number,
  priority: number,
): boolean {
  const { ret, log } = quiet(() =>
    bind().bpf_tc_detach(tcHook(ifindex, attachPoint), tcOpts({ handle, priority })),
  );
  // No filter → ENOENT; no clsact qdisc at all → EINVAL from the kernel's tc lookup.
  if (ret === -ENOENT || ret === -EINVAL) return false;
  checkInt("bpf_tc_detach", ret, `ifindex ${ifindex}, handle ${handle}, prio ${priority}; ${log}`);
  return true;
}

/** Program id of the filter at (handle, priority), or undefined when there is none. */
export function tcQuery(
  ifindex: number,
  attachPoint: number,
  handle: number,
  priority: number,
): number | undefined {
  const opts = tcOpts({ handle, priority });
  const { ret, log } = quiet(() => bind().bpf_tc_query(tcHook(ifindex, attachPoint), opts));
  if (ret === -ENOENT || ret === -EINVAL) return undefined;
  checkInt("bpf_tc_query", ret, `ifindex ${ifindex}, handle ${handle}, prio ${priority}; ${log}`);
  return opts.readUInt32LE(16);
}

// ---------------------------------------------------------------------------------------------
// libc

/** The name of a device in the calling thread's network namespace (undefined: none). */
export function ifIndexToName(ifindex: number): string | undefined {
  const name = Buffer.alloc(16); // IF_NAMESIZE
  const p = bind().if_indextoname(ifindex, name);
  if (isNull(p)) return undefined;
  const end = name.indexOf(0);
  return name.toString("utf8", 0, end < 0 ? name.length : end);
}

/** ifindex of a device in the calling thread's network namespace. */
export function ifNameToIndex(name: string): number {
  const idx = bind().if_nametoindex(name);
  if (idx === 0) throw new LibbpfError("if_nametoindex", lastErrno(), name);
  return idx;
}

const CLONE_NEWNET = 0x40000000;

/**
 * Runs fn with the calling thread switched to the network namespace at nsPath
 * (e.g. /run/netns/NAME), then switches back. Only for synchronous fn: it affects this thread
 * alone (libuv worker threads stay where they are). Meant for tests and the node simulator.
 */
export function withNetns<T>(nsPath: string, fn: () => T): T {
  const self = openSync("/proc/thread-self/ns/net", "r");
  const target = openSync(nsPath, "r");
  try {
    if (bind().setns(target, CLONE_NEWNET) < 0) throw new LibbpfError("setns", lastErrno(), nsPath);
    let result: { value: T } | { error: unknown };
    try {
      result = { value: fn() };
    } catch (error) {
      result = { error };
    }
    if (bind().setns(self, CLONE_NEWNET) < 0) {
      // Staying in the wrong namespace would corrupt every later call: fail hard.
      throw new LibbpfError("setns", lastErrno(), "returning to the original network namespace");
    }
    if ("error" in result) throw result.error;
    return result.value;
  } finally {
    closeSync(target);
    closeSync(self);
  }
}
