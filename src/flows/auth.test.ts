import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../util/clock.js";
import { AUTH_CACHE_TTL_MS, type AuthDecision, bearerToken, CachedAuthorizer } from "./auth.js";

describe("flow endpoint authorization", () => {
  it("reads the bearer token of an Authorization header", () => {
    assert.equal(bearerToken("Bearer abc.def"), "abc.def");
    assert.equal(bearerToken("bearer  abc "), "abc");
    assert.equal(bearerToken("Basic dXNlcjpwdw=="), undefined);
    assert.equal(bearerToken("Bearer"), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });

  it("caches positive reviews for a short time, never negative ones or failures", async () => {
    const clock = new FakeClock();
    const reviewed: string[] = [];
    let answer: AuthDecision | Error = { allowed: true, user: "alice" };
    const auth = new CachedAuthorizer(async (token) => {
      reviewed.push(token);
      if (answer instanceof Error) throw answer;
      return answer;
    }, clock);
    assert.deepEqual(await auth.authorize(undefined), {
      allowed: false,
      status: 401,
      message: "a bearer token is required",
    });
    assert.deepEqual(reviewed, [], "no token, no review");
    assert.deepEqual(await auth.authorize("Bearer t1"), { allowed: true, user: "alice" });
    assert.deepEqual(await auth.authorize("Bearer t1"), { allowed: true, user: "alice" });
    assert.deepEqual(reviewed, ["t1"], "the second answer came from the cache");
    await clock.advance(AUTH_CACHE_TTL_MS);
    answer = { allowed: false, status: 403, message: "revoked" };
    assert.equal(
      (await auth.authorize("Bearer t1")).allowed,
      false,
      "reviewed again after the TTL",
    );
    assert.equal((await auth.authorize("Bearer t1")).allowed, false);
    assert.deepEqual(reviewed, ["t1", "t1", "t1"], "a refusal is not cached");
    answer = new Error("connection refused");
    assert.deepEqual(await auth.authorize("Bearer t2"), {
      allowed: false,
      status: 503,
      message: "cannot review the token with the API server: connection refused",
    });
  });
});
