/**
 * Who may read a node's flows, decided by the API server as kube-rbac-proxy decides it: the
 * client's bearer token goes to a TokenReview (authentication), the user it names to a
 * SubjectAccessReview for `get` on the subresource `nodenetworkstates/flows` (group
 * netloom.io) named like the node (authorization). RBAC grants it with a rule on that
 * resource (config/rbac/flows-reader-role.yaml), optionally limited to nodes by resourceNames.
 *
 * Positive answers are cached for a short time (by a SHA-256 of the token: the token itself is
 * never kept), so a follower's reconnects and a relay's polling do not hammer the API server;
 * a revoked token or binding stops working within that time. Negative answers are not cached.
 */
import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import { z } from "zod";
import { kubeRequest } from "../kube/raw.js";
import type { Clock } from "../util/clock.js";

/** What a client must be allowed: `get` on this resource of the node's NodeNetworkState. */
export const FLOWS_RESOURCE = {
  group: "netloom.io",
  resource: "nodenetworkstates",
  subresource: "flows",
  verb: "get",
} as const;

export const AUTH_CACHE_TTL_MS = 30_000;
const AUTH_CACHE_MAX = 1024;

export type AuthDecision =
  | { allowed: true; user: string }
  | { allowed: false; status: 401 | 403 | 503; message: string };

export interface FlowAuthorizer {
  /** Decides on the request's Authorization header (undefined: none). */
  authorize(authorization: string | undefined): Promise<AuthDecision>;
}

const tokenReviewStatus = z.object({
  status: z
    .object({
      authenticated: z.boolean().optional(),
      error: z.string().optional(),
      user: z
        .object({
          username: z.string().optional(),
          uid: z.string().optional(),
          groups: z.array(z.string()).optional(),
          extra: z.record(z.string(), z.array(z.string())).optional(),
        })
        .optional(),
    })
    .optional(),
});

const accessReviewStatus = z.object({
  status: z
    .object({
      allowed: z.boolean().optional(),
      denied: z.boolean().optional(),
      reason: z.string().optional(),
    })
    .optional(),
});

/** Pure: the token of an `Authorization: Bearer <token>` header. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  return m?.[1];
}

/** Reviews a token: the user it names and whether that user may read the node's flows. */
export type TokenReviewer = (token: string) => Promise<AuthDecision>;

/** Any reviewer's positive answers, cached for ttlMs per token hash; errors answer 503. */
export class CachedAuthorizer implements FlowAuthorizer {
  private readonly cache = new Map<string, { user: string; until: number }>();

  constructor(
    private readonly review: TokenReviewer,
    private readonly clock: Clock,
    private readonly ttlMs = AUTH_CACHE_TTL_MS,
  ) {}

  async authorize(authorization: string | undefined): Promise<AuthDecision> {
    const token = bearerToken(authorization);
    if (!token) return { allowed: false, status: 401, message: "a bearer token is required" };
    const key = createHash("sha256").update(token).digest("hex");
    const now = this.clock.now().getTime();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return { allowed: true, user: hit.user };
    this.cache.delete(key);
    let decision: AuthDecision;
    try {
      decision = await this.review(token);
    } catch (err) {
      return {
        allowed: false,
        status: 503,
        message: `cannot review the token with the API server: ${(err as Error).message}`,
      };
    }
    if (decision.allowed) {
      if (this.cache.size >= AUTH_CACHE_MAX) {
        // Drop the oldest entry (a Map keeps insertion order).
        const first = this.cache.keys().next().value;
        if (first !== undefined) this.cache.delete(first);
      }
      this.cache.set(key, { user: decision.user, until: now + this.ttlMs });
    }
    return decision;
  }
}

/** The API server's answer for `get nodenetworkstates/flows` of `node`, cached. */
export function kubeFlowAuthorizer(opts: {
  kubeconfig: KubeConfig;
  /** The node whose flows are served: the name in the SubjectAccessReview. */
  node: string;
  clock: Clock;
  ttlMs?: number;
  /** Audiences the token must be for (TokenReview spec.audiences); default: the API server's. */
  audiences?: string[];
  timeoutMs?: number;
}): CachedAuthorizer {
  return new CachedAuthorizer((token) => kubeReview(opts, token), opts.clock, opts.ttlMs);
}

/** One TokenReview, then (when it authenticates) one SubjectAccessReview. */
async function kubeReview(
  opts: { kubeconfig: KubeConfig; node: string; audiences?: string[]; timeoutMs?: number },
  token: string,
): Promise<AuthDecision> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const tr = await kubeRequest(
    opts.kubeconfig,
    "POST",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token, ...(opts.audiences ? { audiences: opts.audiences } : {}) },
      },
      timeoutMs,
    },
  );
  if (tr.status !== 201 && tr.status !== 200)
    throw new Error(`TokenReview answered ${tr.status}: ${tr.body.slice(0, 200)}`);
  const review = tokenReviewStatus.safeParse(tr.json());
  if (!review.success) throw new Error(`TokenReview answer: ${review.error.message}`);
  const user = review.data.status?.user;
  if (!review.data.status?.authenticated || !user?.username)
    return { allowed: false, status: 401, message: "the token is not valid" };
  const sar = await kubeRequest(
    opts.kubeconfig,
    "POST",
    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
    {
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.groups ? { groups: user.groups } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          resourceAttributes: { ...FLOWS_RESOURCE, name: opts.node },
        },
      },
      timeoutMs,
    },
  );
  if (sar.status !== 201 && sar.status !== 200)
    throw new Error(`SubjectAccessReview answered ${sar.status}: ${sar.body.slice(0, 200)}`);
  const access = accessReviewStatus.safeParse(sar.json());
  if (!access.success) throw new Error(`SubjectAccessReview answer: ${access.error.message}`);
  if (!access.data.status?.allowed)
    return {
      allowed: false,
      status: 403,
      message: `${user.username} may not ${FLOWS_RESOURCE.verb} ${FLOWS_RESOURCE.resource}/${FLOWS_RESOURCE.subresource} of node ${opts.node} (group ${FLOWS_RESOURCE.group})`,
    };
  return { allowed: true, user: user.username };
}
