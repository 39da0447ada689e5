import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EVERY_PORT } from "../src/datapath-driver/maps/egress-deny.js";
import {
  benchDenyEntries,
  benchDenyRules,
  change,
  iptablesRules,
  jainIndex,
  nftRuleset,
  parseIperfUdp,
  parseProcStatTicks,
  parseProcStatus,
  parseSockperf,
  percentile,
  receiverGoodput,
} from "./datapath-lib.js";

describe("the datapath bench's pure parts", () => {
  it("10,000 entries are 1,000 API-sized rules, the same in the map, iptables and nftables", () => {
    const rules = benchDenyRules(10_000);
    assert.equal(rules.length, 1000);
    assert.deepEqual(rules[0], {
      cidr: "172.16.0.1/32",
      ports: [8001, 8002, 8003, 8004, 8005].map((port) => ({ port })),
    });
    assert.equal(rules[999]!.cidr, "172.16.3.232/32");
    const entries = benchDenyEntries(10_000);
    assert.equal(entries.length, 10_000);
    assert.ok(entries.every((e) => e.protocol !== EVERY_PORT));
    const ipt = iptablesRules(entries).split("\n");
    assert.equal(ipt.filter((l) => l.startsWith("-A OUTPUT")).length, 10_000);
    assert.ok(ipt.includes("-A OUTPUT -d 172.16.0.1/32 -p tcp -m tcp --dport 8001 -j DROP"));
    const nft = nftRuleset(benchDenyEntries(20));
    assert.match(
      nft,
      /elements = \{ 172\.16\.0\.1 \. tcp \. 8001, .*172\.16\.0\.2 \. udp \. 8005 \}/,
    );
    assert.match(nft, /ip daddr \. meta l4proto \. th dport @deny drop/);
    assert.doesNotMatch(nftRuleset([]), /elements/);
    assert.throws(() => benchDenyRules(15), /multiple of 10/);
  });

  it("reads sockperf's half round trip and percentiles", () => {
    const out = [
      "sockperf: \u001b[2;35m====> avg-latency=85.772 (std-dev=410.279)\u001b[0m",
      "sockperf: Summary: Latency is 85.772 usec",
      "sockperf: ---> percentile 99.000 = 1365.733",
      "sockperf: ---> percentile 90.000 =   96.940",
      "sockperf: ---> percentile 50.000 =   26.545",
    ].join("\n");
    assert.deepEqual(parseSockperf(out), { avgUs: 85.772, p50Us: 26.545, p99Us: 1365.733 });
    assert.throws(() => parseSockperf("nothing"), /sockperf output without/);
  });

  it("reads iperf3's UDP packets and the receiver's TCP intervals", () => {
    const udp = { end: { sum: { seconds: 2, packets: 760_000, lost_packets: 480_000 } } };
    assert.deepEqual(parseIperfUdp(JSON.stringify(udp)), {
      sentPps: 380_000,
      receivedPps: 140_000,
    });
    const tcp = {
      end: { sum_received: { bits_per_second: 1 } },
      server_output_json: {
        intervals: [0, 1, 2, 3, 4].map((s) => ({
          sum: { start: s, end: s + 1, bytes: s < 2 ? 1e9 : 6_250_000 },
        })),
      },
    };
    // Seconds 2-4: 6.25 MB a second = 50 Mbit/s; the burst of the first two is left out.
    assert.equal(receiverGoodput(JSON.stringify(tcp), 2, 4), 50e6);
    assert.throws(() => receiverGoodput(JSON.stringify(tcp), 7, 8), /no receiver interval/);
  });

  it("percentiles, fairness, changes, /proc", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.equal(percentile([3, 1, 2], 100), 3);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.equal(jainIndex([1, 1]), 1);
    assert.equal(jainIndex([1, 0]), 0.5);
    assert.equal(change(105, 100), "+5.0 %");
    assert.equal(change(97, 100), "−3.0 %");
    assert.deepEqual(parseProcStatus("Name:\tnode\nVmHWM:\t  200000 kB\nVmRSS:\t  150000 kB\n"), {
      rssKB: 150000,
      hwmKB: 200000,
    });
    const stat = "4242 (node (main)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0";
    assert.equal(parseProcStatTicks(stat), 325);
  });
});
