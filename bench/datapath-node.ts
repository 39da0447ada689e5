// One simulated node's datapath for bench/datapath.ts: the LinuxDriver, as `netloom agent` runs
// it, in a process started inside the node's network namespace (`nsenter --net`: the driver's
// device lookups, tc and ip act on the calling process's namespace). Driven over the IPC
// channel: apply a NodeDatapath (with its ApplyContext), tear down, exit.
//   argv: PIN_DIR     env: NETLOOM_WIREGUARD_GO chooses the wireguard-go (backend.ts)
import type { NodeDatapath } from "../src/api/nodenetworkstate.js";
import type { ApplyContext } from "../src/datapath-driver/driver.js";
import { LinuxDriver } from "../src/datapath-driver/linux/driver.js";

export type ToNode =
  | { id: number; op: "apply"; spec: NodeDatapath; ctx: ApplyContext }
  | { id: number; op: "teardown" };

export type FromNode =
  | { id: number; ok: true; result?: unknown }
  | { id: number; ok: false; error: string };

const pinDir = process.argv[2];
if (!pinDir || !process.send) {
  process.stderr.write("bench/datapath-node.js PIN_DIR: started by bench/datapath.ts over IPC\n");
  process.exit(2);
}
const driver = new LinuxDriver({ pinDir });

const reply = (m: FromNode): void => {
  process.send?.(m);
};

process.on("message", (raw: ToNode) => {
  void (async () => {
    try {
      if (raw.op === "apply")
        reply({ id: raw.id, ok: true, result: await driver.apply(raw.spec, raw.ctx) });
      else {
        await driver.teardown();
        reply({ id: raw.id, ok: true });
      }
    } catch (e) {
      reply({ id: raw.id, ok: false, error: e instanceof Error ? e.message : String(e) });
    }
  })();
});
process.on("disconnect", () => process.exit(0));
