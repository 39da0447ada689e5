import { resolve } from "node:path";
import { readScenario, runScenario } from "../box/scenario.js";
import { flags } from "./args.js";

const say = (line: string) => process.stderr.write(`${line}\n`);

/** `netloom box probe --scenario FILE`: one JSON line per probe on stdout, progress on stderr. */
export async function runBox(rest: string[]): Promise<number> {
  if (rest[0] !== "probe") {
    say("usage: netloom box probe --scenario FILE (netloom box --help)");
    return 2;
  }
  const argv = rest.slice(1);
  const f = flags("netloom box probe", argv, {
    scenario: { type: "string" },
    dir: { type: "string", default: ".netloom/probe" },
    prefix: { type: "string", default: "nlp" },
    "underlay-octet": { type: "string", default: "70" },
  });
  if (!f.scenario) throw new Error("--scenario FILE is required");
  const octet = Number(f["underlay-octet"]);
  if (!Number.isInteger(octet) || octet < 1 || octet > 254)
    throw new Error(`--underlay-octet ${f["underlay-octet"]}: a number from 1 to 254`);
  const scenario = readScenario(f.scenario);
  const lines = await runScenario(scenario, {
    dir: resolve(f.dir ?? ".netloom/probe"),
    prefix: f.prefix ?? "nlp",
    underlayOctet: octet,
    progress: (l) => say(`[box probe] ${l}`),
    onProbe: (line) => process.stdout.write(`${JSON.stringify(line)}\n`),
  });
  const denied = lines.filter((l) => l.verdict === "deny").length;
  const errors = lines.filter((l) => l.verdict === "error").length;
  say(
    `[box probe] ${lines.length} probes: ${lines.length - denied - errors} allowed, ${denied} denied, ${errors} errors`,
  );
  return errors > 0 ? 1 : 0;
}
