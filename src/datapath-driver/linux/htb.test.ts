// HTB helpers (pure), then syncHtb against the real kernel (root, ip and tc needed): what it
// programs reads back as programmed, so a second sync changes nothing.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { skipWhen, unmet } from "../../../test/support/prerequisites.js";
import { sh } from "../../util/exec.js";
import {
  classIdFor,
  classMinorFor,
  defaultBurstBytes,
  HTB_MIN_BURST_BYTES,
  type HtbClass,
  type HtbClassStats,
  htbClassesToProgram,
  parseHtbClasses,
  readHtbClassStats,
  removeHtb,
  sameRate,
  syncHtb,
} from "./htb.js";

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
    assert.deepEqual(classes.get(0x10b), {
      rateBitsPerSecond: 50_000_000,
      burstBytes: 65_536,
      cburstBytes: 65_536,
      sentBytes: 31_250_000,
    });
    assert.equal(classes.get(0x20c)?.burstBytes, 1600);
    assert.equal(classes.get(0x20c)?.rateBitsPerSecond, 33_333_000);
    assert.ok(sameRate(33_333_000, 33_333_333), "tc's rounding is the same rate");
    assert.ok(!sameRate(40_000_000, 50_000_000));
  });
});

describe("HTB default burst", () => {
  it("is what the rate sends in 1 ms, never below tc's default of 1600 bytes", () => {
    assert.equal(HTB_MIN_BURST_BYTES, 1600);
    const cases: [rate: number, burst: number][] = [
      [1_000, 1600],
      [10_000_000, 1600], // 1 ms is 1250 B: the floor
      [12_800_000, 1600], // 1 ms is exactly the floor
      [33_333_333, 4167], // rounded up: never less than 1 ms
      [50_000_000, 6250],
      [1_000_000_000, 125_000],
      [10_000_000_000, 1_250_000],
      [100_000_000_000, 12_500_000],
    ];
    for (const [rate, burst] of cases) {
      assert.equal(defaultBurstBytes(rate), burst, `${rate} bit/s`);
      assert.ok(defaultBurstBytes(rate) >= rate / 8 / 1000, `${rate} bit/s: at least 1 ms`);
    }
  });
});

describe("which HTB classes to program", () => {
  const stats = (rate: number, burst?: number, cburst = burst): HtbClassStats => ({
    rateBitsPerSecond: rate,
    ...(burst !== undefined ? { burstBytes: burst } : {}),
    ...(cburst !== undefined ? { cburstBytes: cburst } : {}),
    sentBytes: 0,
  });
  const gbit: HtbClass = { minor: 1, rateBitsPerSecond: 1_000_000_000 };

  it("a missing class, another rate or another burst; not the same as tc prints it back", () => {
    const cases: [
      name: string,
      have: HtbClassStats | undefined,
      want: HtbClass,
      program: boolean,
    ][] = [
      ["missing", undefined, gbit, true],
      ["as programmed", stats(1e9, 125_000), gbit, false],
      ["tc's default burst (an older agent's)", stats(1e9, 1600), gbit, true],
      ["cburst alone differs", stats(1e9, 125_000, 1600), gbit, true],
      ["another rate", stats(5e8, 62_500), gbit, true],
      [
        "rate and burst as tc rounds them",
        stats(33_333_000, 4166),
        { minor: 1, rateBitsPerSecond: 33_333_333 },
        false,
      ],
      [
        "64Kb for 65536",
        stats(5e7, 65_536),
        { minor: 1, rateBitsPerSecond: 5e7, burstBytes: 65_536 },
        false,
      ],
      [
        "1Mb for 1049000",
        stats(5e7, 1_048_576),
        { minor: 1, rateBitsPerSecond: 5e7, burstBytes: 1_049_000 },
        false,
      ],
      [
        "a burst the user changed",
        stats(5e7, 65_536),
        { minor: 1, rateBitsPerSecond: 5e7, burstBytes: 131_072 },
        true,
      ],
      ["a burst tc printed in no known unit", stats(1e9), gbit, false],
    ];
    for (const [name, have, want, program] of cases) {
      const on = new Map(have ? [[1, have]] : []);
      assert.deepEqual(htbClassesToProgram(on, [want]), program ? [want] : [], name);
    }
  });
});

const dev = `nlh${process.pid % 100000}x`;
const missing =
  process.platform !== "linux"
    ? "needs Linux"
    : unmet({ root: "creates a veth pair and HTB classes", tools: ["ip", "tc"] });

describe("syncHtb (real kernel)", { skip: skipWhen(missing) }, () => {
  before(() => {
    sh("ip", ["link", "add", dev, "type", "veth", "peer", "name", `${dev.slice(0, -1)}y`]);
    sh("ip", ["link", "set", dev, "up"]);
  });
  after(() => {
    removeHtb(dev);
    spawnSync("ip", ["link", "del", dev]);
  });

  const classes: HtbClass[] = [
    { minor: 0x11, rateBitsPerSecond: 10_000_000 },
    { minor: 0x12, rateBitsPerSecond: 33_333_333 },
    { minor: 0x13, rateBitsPerSecond: 1_000_000_000 },
    { minor: 0x14, rateBitsPerSecond: 10_000_000_000 },
    { minor: 0x15, rateBitsPerSecond: 100_000_000_000 },
    { minor: 0x16, rateBitsPerSecond: 50_000_000, burstBytes: 65_536 },
    { minor: 0x17, rateBitsPerSecond: 50_000_000, burstBytes: 1_049_000 },
  ];

  it("programs the default burst, and reads back as programmed (nothing to do again)", () => {
    syncHtb(dev, classes);
    const have = readHtbClassStats(dev);
    assert.deepEqual([...have.keys()].sort(), classes.map((c) => c.minor).sort());
    assert.deepEqual(
      htbClassesToProgram(have, classes),
      [],
      "a fresh class is not seen as changed",
    );
    const gbit = have.get(0x13);
    assert.ok((gbit?.burstBytes ?? 0) >= 125_000, `1 Gbit/s burst ${gbit?.burstBytes}`);
    assert.ok((gbit?.cburstBytes ?? 0) >= 125_000, `1 Gbit/s cburst ${gbit?.cburstBytes}`);
    assert.equal(have.get(0x11)?.burstBytes, 1600, "10 Mbit/s keeps the floor");
  });

  it("reprograms a class left with tc's default burst by an older agent, and a changed burst", () => {
    sh("tc", [
      "class",
      "replace",
      "dev",
      dev,
      "parent",
      "1:",
      "classid",
      "1:13",
      "htb",
      "rate",
      "1000000000bit",
      "ceil",
      "1000000000bit",
    ]);
    assert.ok((readHtbClassStats(dev).get(0x13)?.burstBytes ?? 0) < 2000, "tc's default");
    const changed = classes.map((c) => (c.minor === 0x16 ? { ...c, burstBytes: 131_072 } : c));
    syncHtb(dev, changed);
    const have = readHtbClassStats(dev);
    assert.ok((have.get(0x13)?.burstBytes ?? 0) >= 125_000, "back to 1 ms at the rate");
    assert.equal(have.get(0x16)?.burstBytes, 131_072);
    assert.deepEqual(htbClassesToProgram(have, changed), []);
  });
});
