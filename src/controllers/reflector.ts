import { request as httpRequest, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import { Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError, isGone, KubeStatusError } from "./errors.js";
import { exponentialBackoffMs } from "./rate-limiter.js";
import type { KubeObject } from "./resource.js";

/** Where a reflector delivers what it lists and watches (the informer). */
export interface ReflectorSink<T> {
  replace(items: T[], resourceVersion: string): void;
  upsert(obj: T): void;
  remove(obj: T): void;
}

export interface ReflectorOptions {
  kubeconfig: KubeConfig;
  /** Collection path, e.g. /api/v1/namespaces/x/configmaps. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Restart backoff after errors: initialMs·2^n capped at maxMs (default 1 s → 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** Page size of lists (default 500, as client-go). */
  pageSize?: number;
  log: Logger;
  /** Every list or watch failure, as it happens (a remote cluster's status reports them). */
  onError?: (err: unknown) => void;
  /** In touch with the API server again (first list or watch after the last error). */
  onConnected?: () => void;
}

export interface ReflectorStats {
  lists: number;
  watches: number;
  /** Watches or lists answered with 410 Gone, each followed by a relist. */
  gone: number;
  errors: number;
}

/** A list response as JSON (client-node's V1ListMeta names `continue` `_continue`). */
interface RawList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

interface WatchEnd {
  events: number;
  durationMs: number;
}

interface WatchEvent {
  type: string;
  object: KubeObject & { code?: number; message?: string; reason?: string };
}

/** A watch that ends cleanly this fast without events is a failure (client-go's rule). */
const SHORT_WATCH_MS = 1000;
/** A watch that stayed up this long proves the connection healthy: the backoff starts over. */
const HEALTHY_WATCH_MS = 30_000;

/**
 * client-go's Reflector: list, then watch from the list's resourceVersion; relist at once on
 * 410 Gone, back off 1 s → 30 s on any other error, and keep going until stopped.
 * Built on client-node's Watch rather than ListWatch: ListWatch stops for good on a non-410
 * error, re-watches without backoff, and its typed list function turns timestamps into Dates
 * and drops fields its generated models do not know, unlike the raw JSON a watch delivers.
 */
export class Reflector<T extends KubeObject> {
  readonly stats: ReflectorStats = { lists: 0, watches: 0, gone: 0, errors: 0 };
  private resourceVersion = "";
  /** After a 410 the next list must be a consistent read (the cache may be behind too). */
  private consistentList = false;
  private watchStartedAt: number | undefined;
  /** Since when (epoch ms) lists and watches have succeeded without an error in between. */
  private connectedSinceMs: number | undefined;
  private stopped = true;
  private loop: Promise<void> | undefined;
  private readonly cancel = new Set<() => void>();
  private readonly watch: Watch;
  private readonly backoff: { initialMs: number; maxMs: number };

  constructor(
    private readonly opts: ReflectorOptions,
    private readonly sink: ReflectorSink<T>,
  ) {
    this.watch = new Watch(opts.kubeconfig);
    this.backoff = opts.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  }

  get lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  /**
   * Since when (epoch ms) this reflector has been in touch with the API server: the first list
   * or watch that succeeded after the last error; undefined while failing. What happened
   * before it could not be seen (the operator's liveness judgement uses it so that its own
   * outage is not taken for the agents' silence).
   */
  get connectedSince(): number | undefined {
    return this.connectedSinceMs;
  }

  private markConnected(): void {
    if (this.connectedSinceMs !== undefined) return;
    this.connectedSinceMs = Date.now();
    this.opts.onConnected?.();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const cancel of [...this.cancel]) cancel();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    let lastWasGone = false;
    while (!this.stopped) {
      this.watchStartedAt = undefined;
      try {
        if (this.resourceVersion === "") await this.list();
        if (this.stopped) break; // stop() during the list: do not open a watch nobody cancels
        const end = await this.watchOnce();
        if (end.events === 0 && end.durationMs < SHORT_WATCH_MS) {
          throw new Error(`very short watch (${end.durationMs} ms, no events)`);
        }
        failures = 0;
        lastWasGone = false;
      } catch (err) {
        if (this.stopped) break;
        this.connectedSinceMs = undefined;
        this.opts.onError?.(err);
        if (isGone(err)) {
          this.stats.gone++;
          this.resourceVersion = "";
          this.consistentList = true;
          this.opts.log.info(
            { path: this.opts.path },
            "resourceVersion expired (410 Gone); relisting",
          );
          // One immediate relist; a second 410 in a row is backed off like any error.
          if (!lastWasGone) {
            lastWasGone = true;
            continue;
          }
        }
        this.stats.errors++;
        const ranMs = this.watchStartedAt === undefined ? 0 : Date.now() - this.watchStartedAt;
        if (ranMs >= HEALTHY_WATCH_MS) failures = 0;
        const delayMs = exponentialBackoffMs(this.backoff.initialMs, this.backoff.maxMs, failures);
        failures++;
        this.opts.log.warn(
          { path: this.opts.path, err: describeError(err), delayMs },
          "list/watch failed; retrying",
        );
        await this.sleep(delayMs);
      }
    }
  }

  private async list(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    do {
      // As client-go: the first list is served from the API server's watch cache
      // (resourceVersion=0, which ignores limit), not read from etcd. A paged consistent list
      // with a field selector (a node's Pods) would make etcd hand over every Pod of the
      // cluster to filter out all but a few, for each of a thousand agents starting.
      const fromCache = !this.consistentList;
      const page = (await this.getJson({
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        ...(fromCache
          ? { resourceVersion: "0" }
          : { limit: this.opts.pageSize ?? 500, continue: cont }),
      })) as RawList<T>;
      // List items carry no apiVersion/kind; stamp them so they look like watched objects.
      const kind = page.kind?.replace(/List$/, "");
      for (const item of page.items ?? []) {
        items.push({ apiVersion: page.apiVersion, kind, ...item });
      }
      cont = fromCache ? undefined : page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? "";
    } while (cont !== undefined && !this.stopped);
    if (this.stopped) return;
    this.stats.lists++;
    this.markConnected();
    this.sink.replace(items, resourceVersion);
    this.resourceVersion = resourceVersion;
    this.consistentList = false;
  }

  private watchOnce(): Promise<WatchEnd> {
    const started = Date.now();
    this.watchStartedAt = started;
    let events = 0;
    return new Promise<WatchEnd>((resolve, reject) => {
      let ended = false;
      let controller: AbortController | undefined;
      const finish = (err: unknown) => {
        if (ended) return;
        ended = true;
        this.cancel.delete(cancel);
        controller?.abort();
        if (err) reject(err);
        else resolve({ events, durationMs: Date.now() - started });
      };
      const cancel = () => finish(undefined);
      this.cancel.add(cancel);
      const onEvent = (type: string, object: WatchEvent["object"]) => {
        if (ended) return;
        switch (type) {
          case "ADDED":
          case "MODIFIED":
            this.sink.upsert(object as T);
            break;
          case "DELETED":
            this.sink.remove(object as T);
            break;
          case "BOOKMARK":
            break;
          case "ERROR":
            finish(
              new KubeStatusError(
                object.code ?? 500,
                object.message ?? "watch error",
                object.reason ?? undefined,
              ),
            );
            return;
          default:
            return;
        }
        events++;
        const rv = object.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
      };
      this.stats.watches++;
      this.watch
        .watch(
          this.opts.path,
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            // Server-side timeout (5–10 min as client-go) so a silently dead connection ends.
            timeoutSeconds: Math.floor(300 + Math.random() * 300),
            labelSelector: this.opts.labelSelector,
            fieldSelector: this.opts.fieldSelector,
          },
          onEvent,
          (err: unknown) => finish(err ?? undefined),
        )
        .then(
          (c) => {
            controller = c;
            // client-node resolves with a controller even when the request failed (it calls
            // done(err) first): only a watch still running is a connection.
            if (ended) c.abort();
            else this.markConnected();
          },
          (err: unknown) => finish(err),
        );
    });
  }

  /** A raw JSON GET: typed client lists would deserialize into Dates and drop unknown fields. */
  private async getJson(query: Record<string, string | number | undefined>): Promise<unknown> {
    const cluster = this.opts.kubeconfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    const url = new URL(cluster.server + this.opts.path);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
    const abort = new AbortController();
    const cancel = () => abort.abort();
    this.cancel.add(cancel);
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    try {
      const options: RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
      await this.opts.kubeconfig.applyToHTTPSOptions(options);
      abort.signal.throwIfAborted();
      return await new Promise<unknown>((resolve, reject) => {
        const req = send(url, { ...options, signal: abort.signal, timeout: 60_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch {
              body = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status === 200 && body !== undefined) return resolve(body);
            const s = (body ?? {}) as { message?: string; reason?: string };
            reject(
              new KubeStatusError(status, s.message ?? `GET ${url.pathname}: ${status}`, s.reason),
            );
          });
        });
        req.on("timeout", () => req.destroy(new Error(`GET ${url.pathname} timed out`)));
        req.on("error", reject);
        req.end();
      });
    } finally {
      this.cancel.delete(cancel);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.cancel.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.cancel.add(done);
    });
  }
}
