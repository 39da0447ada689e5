/**
 * The live service-map page `netloom observe --ui` serves: one self-contained HTML document (no
 * build step, no dependencies) that polls /api/map and /api/flows once a second and draws
 * workloads as nodes, connections as edges coloured by verdict (drop reasons and the denying
 * policies on hover), and a filterable table of recent flows. Elements carry data-* attributes
 * (data-node, data-from/data-to/data-verdict) so a browser test can check what was drawn.
 */
export const FLOW_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Netloom flows</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 0; color: #1d2433; background: #f7f8fa; }
  header { padding: 10px 16px; background: #1d2433; color: #fff; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  #status { opacity: .8; }
  main { display: grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap: 12px; padding: 12px; }
  section { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 8px; overflow: auto; }
  h2 { font-size: 13px; margin: 0 0 6px; }
  svg { width: 100%; height: 560px; }
  .node circle { fill: #e8eefc; stroke: #3d5afe; stroke-width: 1.5; }
  .node.reserved circle, .node.external circle { fill: #f1f1f1; stroke: #888; }
  .node text { font-size: 11px; text-anchor: middle; }
  .edge { stroke-width: 2; fill: none; marker-end: url(#arrow); }
  .edge.forwarded { stroke: #2e9d57; }
  .edge.dropped { stroke: #d93025; stroke-width: 3; }
  .edge.audit { stroke: #e8a317; stroke-dasharray: 5 3; }
  .legend span { margin-right: 12px; }
  .legend .forwarded { color: #2e9d57; } .legend .dropped { color: #d93025; } .legend .audit { color: #e8a317; }
  table { border-collapse: collapse; width: 100%; font-family: ui-monospace, monospace; font-size: 12px; }
  th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eef0f4; white-space: nowrap; }
  tr.DROPPED td.verdict { color: #d93025; font-weight: 600; }
  tr.AUDIT td.verdict { color: #e8a317; }
  input { width: 100%; box-sizing: border-box; margin-bottom: 6px; padding: 4px; }
</style>
</head>
<body>
<header><h1>Netloom flows</h1><span id="status">connecting…</span></header>
<main>
  <section>
    <h2>Service map</h2>
    <div class="legend"><span class="forwarded">━ forwarded</span><span class="dropped">━ dropped</span><span class="audit">╌ audit (would drop)</span></div>
    <svg id="map" viewBox="0 0 800 560" role="img" aria-label="service map">
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="24" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>
      <g id="edges"></g><g id="nodes"></g>
    </svg>
  </section>
  <section>
    <h2>Recent flows</h2>
    <input id="filter" placeholder="filter: pod, namespace, verdict, reason, port">
    <table><thead><tr><th>time</th><th>node</th><th>source</th><th>destination</th><th>verdict</th><th>reason</th></tr></thead><tbody id="flows"></tbody></table>
  </section>
</main>
<script>
const NS = "http://www.w3.org/2000/svg";
const el = (name, attrs, parent) => {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
};
function layout(nodes) {
  const cx = 400, cy = 280, r = Math.min(230, 60 + nodes.length * 18);
  const at = {};
  nodes.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(nodes.length, 1) - Math.PI / 2;
    at[n.id] = { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) };
  });
  return at;
}
function drawMap(map) {
  const at = layout(map.nodes);
  const edges = document.getElementById("edges");
  const nodes = document.getElementById("nodes");
  edges.replaceChildren();
  nodes.replaceChildren();
  for (const e of map.edges) {
    const a = at[e.from], b = at[e.to];
    if (!a || !b) continue;
    const verdict = e.dropped > 0 ? "dropped" : e.audit > 0 ? "audit" : "forwarded";
    const path = a === b
      ? "M " + a.x + " " + (a.y - 18) + " c 30 -40 60 10 18 18"
      : "M " + a.x + " " + a.y + " L " + b.x + " " + b.y;
    const line = el("path", { d: path, class: "edge " + verdict, "data-from": e.from, "data-to": e.to, "data-verdict": verdict }, edges);
    const reasons = Object.entries(e.reasons).map(([k, v]) => k + " ×" + v).join(", ");
    const title = el("title", {}, line);
    title.textContent = e.from + " → " + e.to + ": " + e.forwarded + " forwarded, " + e.dropped + " dropped, " + e.audit + " audit" +
      (reasons ? "; reasons: " + reasons : "") + (e.deniedBy.length ? "; denied by " + e.deniedBy.join(", ") : "");
  }
  for (const n of map.nodes) {
    const p = at[n.id];
    const g = el("g", { class: "node " + n.kind, "data-node": n.id, transform: "translate(" + p.x + "," + p.y + ")" }, nodes);
    el("circle", { r: 16 }, g);
    const t = el("text", { y: 30 }, g);
    t.textContent = n.id;
  }
}
let flows = [];
function drawFlows() {
  const q = document.getElementById("filter").value.trim().toLowerCase();
  const body = document.getElementById("flows");
  body.replaceChildren();
  for (const row of flows.slice().reverse()) {
    if (q && !row.cells.join(" ").toLowerCase().includes(q)) continue;
    const tr = document.createElement("tr");
    tr.className = row.verdict;
    row.cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (i === 4) td.className = "verdict";
      td.textContent = c;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}
async function refresh() {
  try {
    const [map, recent] = await Promise.all([
      fetch("api/map").then((r) => r.json()),
      fetch("api/flows?limit=300").then((r) => r.json()),
    ]);
    drawMap(map);
    flows = recent;
    drawFlows();
    document.getElementById("status").textContent =
      map.nodes.length + " workloads, " + map.edges.length + " connections, " + recent.length + " recent flows";
  } catch (err) {
    document.getElementById("status").textContent = "not connected: " + err;
  }
}
document.getElementById("filter").addEventListener("input", drawFlows);
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
