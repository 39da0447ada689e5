import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classIdFor, classMinorFor, parseHtbClasses, sameRate } from "./htb.js";

describe("HTB helpers", () => {
  it("gives each pod of a /16 its own class", () => {
    assert.equal(classMinorFor("10.244.1.11"), 0x010b);
    assert.equal(classIdFor("10.244.1.11"), 0x0001010b);
    assert.notEqual(classMinorFor("10.244.1.11"), classMinorFor("10.244.2.11"));
  });
  it("parses `tc -s class show` (iproute2 6.1 prints no JSON for classes)", () => {
    const text = `class htb 1:10b root prio 0 rate 50Mbit ceil 50Mbit burst 64Kb cburst 64Kb 
 Sent 31250000 bytes 20833 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
class htb 1:20c root prio 0 rate 33333Kbit ceil 33333Kbit burst 1600b cburst 1600b 
 Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) 
class htb 2:1 root prio 0 rate 1Gbit ceil 1Gbit burst 1600b cburst 1600b 
 Sent 5 bytes 1 pkt (dropped 0, overlimits 0 requeues 0) 
`;
    const classes = parseHtbClasses(text);
    assert.deepEqual([...classes.keys()], [0x10b, 0x20c], "only handle 1:");
    assert.deepEqual(classes.get(0x10b), { rateBitsPerSecond: 50_000_000, sentBytes: 31_250_000 });
    assert.equal(classes.get(0x20c)?.rateBitsPerSecond, 33_333_000);
    assert.ok(sameRate(33_333_000, 33_333_333), "tc's rounding is the same rate");
    assert.ok(!sameRate(40_000_000, 50_000_000));
  });
});
