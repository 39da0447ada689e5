import { resolve } from "node:path";
import { writeCRDFiles } from "../api/generate-crds.js";
import { ensureBinaries } from "../cluster/binaries.js";
import {
  readControlPlaneState,
  startControlPlane,
  stopControlPlane,
} from "../cluster/control-plane.js";

const USAGE = `usage: netloom <command>

  cluster up        start etcd + kube-apiserver on 127.0.0.1; kubeconfig in .netloom/kubeconfig
  cluster down      stop them and remove every file they wrote
  cluster status    print where the local control plane runs
  cluster binaries  find or build kube-apiserver, kubectl and etcd (cached in ~/.cache/netloom)
  crds [DIR]        generate the CustomResourceDefinitions from src/api into DIR (default crds/)
  operator          run the operator (--kubeconfig, --metrics-port, --leader-elect)
  agent --node N    run the node agent for node N (--driver linux|memory, --bpffs, --state-dir)
  clustermesh kubeconfig   mint the read-only kubeconfig another cluster peers with this one by
  demo up|down      the cluster-in-a-box demo: 3 nodes, 2 pods each, the samples, measured
  demo drift        change one node's datapath by hand and watch the agent heal it
  demo mesh [down]  two clusters peered by ClusterMeshPeers, pods talking across them
  box probe --scenario FILE  build pods and NetworkPolicies in a box, measure real connections
  observe           flows from every node's agent (drops with reasons, connections), filtered; --ui
`;

/** `netloom <command> --help`: what each command does and every flag it takes. */
export const COMMAND_HELP: Record<string, string> = {
  cluster: `usage: netloom cluster up|down|status|binaries

  up        start etcd + kube-apiserver on 127.0.0.1; kubeconfig in .netloom/kubeconfig
  down      stop them and remove every file they wrote
  status    print where the local control plane runs (JSON)
  binaries  find or build kube-apiserver, kubectl and etcd (cached in ~/.cache/netloom)
`,
  crds: `usage: netloom crds [DIR]

  Generate the CustomResourceDefinitions from the zod schemas in src/api into DIR (default crds/).
`,
  operator: `usage: netloom operator [flags]

  Run the operator: folds node reports into the status of NetworkConfigs, EncryptionProfiles,
  BandwidthPolicies and ClusterMeshPeers; creates each node's NodeNetworkState and NodePeer.

  --kubeconfig PATH              kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --metrics-port PORT            Prometheus metrics and health probes (default 8080; 0: any free port)
  --leader-elect                 run only while holding the leader Lease (for 2+ replicas)
  --lease-namespace NS           namespace of the leader Lease (default netloom-system)
  --lease-name NAME              name of the leader Lease (default netloom-operator)
  --agent-lease-namespace NS     where agents renew their liveness Leases (default netloom-node-leases)
  --cluster-name NAME            this cluster's name in a cluster mesh (a DNS label, at most 32)
  --cluster-id ID                this cluster's ID in a cluster mesh (1-255, unique in the mesh)
  --log-level LEVEL              pino level: trace, debug, info, warn, error (default info)
`,
  agent: `usage: netloom agent --node NAME [flags]

  Run the node agent: watch what concerns this node, render its desired datapath, converge the
  kernel (eBPF programs and maps, HTB, WireGuard), heal drift, report in its NodeNetworkState.

  --node NAME                    this node's name (default: $NODE_NAME)
  --kubeconfig PATH              kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --driver linux|memory          the datapath driver (default: linux where it can run, else memory)
  --bpffs DIR                    bpffs mount; pins go to DIR/netloom (default /sys/fs/bpf)
  --state-dir DIR                WireGuard keys and local state (default /var/lib/netloom)
  --metrics-port PORT            Prometheus metrics (default 9962; 0: any free port)
  --heartbeat DURATION           status refresh period (default 15s)
  --wireguard-interface NAME     override the EncryptionProfile's interface name on this node
  --lease-namespace NS           where to renew the liveness Lease (default netloom-node-leases)
  --log-level LEVEL              pino level: trace, debug, info, warn, error (default info)
  --flow-buffer N                recent flows kept for GET /v1/flows (default 4095)
  --flows-port PORT              serve /v1/flows on its own port (default: the metrics port)
  --flow-top-workloads N         workloads named in the drop metrics; the rest "other" (default 20)
  --flow-max-events N            flow events read per second at most (default 30000)
`,
  clustermesh: `usage: netloom clustermesh kubeconfig [flags] > remote.kubeconfig

  Run against the cluster to be peered with (its kubeconfig): creates a service account bound
  to the ClusterRole netloom-clustermesh-remote (get, list, watch NodePeers; nothing else),
  mints a token for it and prints a kubeconfig with that token on stdout. The other cluster
  stores it in the Secret its ClusterMeshPeer names.

  --kubeconfig PATH              the cluster to be peered with (default: $KUBECONFIG, ~/.kube/config)
  --namespace NS                 namespace of the service account (default netloom-system)
  --service-account NAME         its name (default netloom-clustermesh)
  --duration DURATION            token lifetime (default 8760h; the API server may cap it)
  --server URL                   the API server address as the other cluster reaches it
                                 (default: the kubeconfig's)
  --cluster-name NAME            the cluster's name inside the printed kubeconfig (default remote)
`,
  demo: `usage: netloom demo up|down|drift|mesh [down]

  up     the cluster-in-a-box: a real control plane, 3 nodes as network namespaces, 2 pods
         each, the operator and agents, the samples applied, and what they do measured
  down   remove every process, namespace, link, pin and file of it
  drift  change one node's datapath by hand and watch the agent heal it
  mesh   two clusters ("east" and "west"), each with its own control plane, 2 nodes and their
         agents, peered by ClusterMeshPeers; pod to pod across them, measured (make demo-mesh)
  mesh down  remove both
`,
};

COMMAND_HELP.box = `usage: netloom box probe --scenario FILE [flags]

  Build a scenario in a new cluster-in-a-box (root, real kernel): namespaces, pods (labels,
  named container ports, node), and per case a set of NetworkPolicies and probes. Each case's
  policies are applied and waited for until realized on every node; each probe runs as a real
  TCP or UDP connection from its source pod. One JSON line per probe on stdout (verdict allow or
  deny, the drop reason and identities); progress on stderr; the box is torn down at the end.
  The format is in docs/networkpolicy.md.

  --scenario FILE                the scenario, JSON or YAML
  --dir DIR                      where the box keeps its files (default .netloom/probe)
  --prefix P                     prefix of its namespaces, links and pins (default nlp)
  --underlay-octet N             its underlay is 192.168.N.0/24 (default 70)
`;

COMMAND_HELP.observe = `usage: netloom observe [flags]

  Flows from every node, as \`hubble observe\` shows them: drops with their reason and the policy
  that denied them, and connections (first packet and end). Asks each node's agent
  (http://NODE-IP:PORT/v1/flows, a bearer token reviewed by the API server; see docs/flows.md).

  --kubeconfig PATH              kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --node NAME                    only this node
  --agent-port PORT              the agents' flow endpoint port (default 9962)
  --token TOKEN                  bearer token (default: $NETLOOM_TOKEN, the kubeconfig user's)
  --service-account NS/NAME      mint a 1 h token for this ServiceAccount (client-cert kubeconfigs)
  --from-pod [NS/]POD            flows from this pod (namespace from --namespace, else default)
  --to-pod [NS/]POD              flows to this pod
  --pod [NS/]POD                 flows from or to this pod
  --namespace NS                 flows from or to pods in NS
  --verdict V                    FORWARDED, DROPPED or AUDIT (would have been dropped)
  --reason R                     drop reason: policy_denied, egress_denied, unencrypted
  --port PORT                    source or destination port
  --protocol P                   TCP, UDP, SCTP, ICMPv4, ICMPv6
  --since WHEN                   flows since a duration ago (30s, 10m, 1h) or an RFC 3339 time
  --last N                       without --follow: the N most recent (default 20; 0: all kept)
  --follow                       keep streaming new flows
  -o, --output FORMAT            compact (default), json (one line per flow), table
  --ui                           serve a live service map and flow table (implies --follow)
  --listen HOST:PORT             where --ui listens (default 127.0.0.1:0, any free port)
`;

/** Where the local control plane keeps its state, relative to the working directory. */
export const LOCAL_DIR = ".netloom";
const clusterDir = () => resolve(LOCAL_DIR, "cluster");
const kubeconfigPath = () => resolve(LOCAL_DIR, "kubeconfig");

const say = (line: string) => process.stderr.write(`${line}\n`);

async function cluster(args: string[]): Promise<number> {
  switch (args[0]) {
    case "up": {
      const t0 = Date.now();
      const state = await startControlPlane({
        dir: clusterDir(),
        kubeconfigPath: kubeconfigPath(),
        progress: (l) => say(`[cluster up] ${l}`),
      });
      say(`[cluster up] ready in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${state.apiServerURL}`);
      say(`  export KUBECONFIG=${state.kubeconfigPath}`);
      if (state.kubectl) say(`  kubectl: ${state.kubectl}`);
      return 0;
    }
    case "down": {
      const stopped = await stopControlPlane(clusterDir());
      say(
        stopped ? "[cluster down] stopped; data removed" : "[cluster down] no local control plane",
      );
      return 0;
    }
    case "binaries": {
      const bins = await ensureBinaries((l) => say(`[cluster binaries] ${l}`));
      say(
        `[cluster binaries] ${bins.source}: ${bins.kubeApiserver}, ${bins.etcd}, ${bins.kubectl ?? "(no kubectl)"}`,
      );
      return 0;
    }
    case "status": {
      const state = readControlPlaneState(clusterDir());
      if (!state) {
        say("no local control plane (netloom cluster up starts one)");
        return 1;
      }
      process.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
      return 0;
    }
    default:
      say(USAGE);
      return 2;
  }
}

export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command && COMMAND_HELP[command] && (rest.includes("--help") || rest.includes("-h"))) {
    process.stdout.write(COMMAND_HELP[command]);
    return 0;
  }
  try {
    switch (command) {
      case "cluster":
        return await cluster(rest);
      case "demo": {
        const { DEFAULT_DEMO, demoDown, demoDrift, demoUp } = await import("../demo/demo.js");
        // Tests run a second demo beside a person's: another directory, prefix and underlay.
        const env = process.env;
        const demo = {
          dir: env.NETLOOM_DEMO_DIR ? resolve(env.NETLOOM_DEMO_DIR) : DEFAULT_DEMO.dir,
          prefix: env.NETLOOM_DEMO_PREFIX ?? DEFAULT_DEMO.prefix,
          underlayOctet: Number(env.NETLOOM_DEMO_UNDERLAY_OCTET ?? DEFAULT_DEMO.underlayOctet),
        };
        if (rest[0] === "up") return await demoUp(demo, say);
        if (rest[0] === "down") return await demoDown(demo, say);
        if (rest[0] === "drift") return await demoDrift(demo, say);
        if (rest[0] === "mesh") {
          const mesh = await import("../demo/mesh.js");
          return rest[1] === "down" ? await mesh.demoMeshDown(say) : await mesh.demoMeshUp(say);
        }
        say(USAGE);
        return 2;
      }
      // Loaded on demand: the agent pulls in libbpf through koffi, which other commands need not.
      case "operator":
        return await (await import("./operator.js")).runOperator(rest);
      case "agent":
        return await (await import("./agent.js")).runAgent(rest);
      case "clustermesh":
        return await (await import("./clustermesh.js")).runClusterMesh(rest);
      case "box":
        return await (await import("./box.js")).runBox(rest);
      case "observe":
        return await (await import("./observe.js")).runObserve(rest);
      case "crds": {
        const dir = resolve(rest[0] ?? "crds");
        for (const f of writeCRDFiles(dir)) say(`wrote ${dir}/${f}`);
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        say(`netloom: unknown command "${command}"\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    say(`netloom ${command}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
