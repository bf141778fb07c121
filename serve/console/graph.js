// A memory's graph: the memories it shares entities with, to depth 2, laid out in rings
// around it (depth 1 inside, depth 2 outside). A node's click makes it the centre.
import { post } from "./api.js";
import { failure, h, message, num, s } from "./dom.js";

const SIZE = 640;
const RING = 130;

// Rings by depth: the first all round the centre; each outer one's memories in an arc behind
// the memories that link them inward (so a memory sits behind the one that reached it).
function layout(nodes, edges) {
  const at = new Map();
  const angle = new Map();
  const depths = [...new Set(nodes.map((n) => n.depth))].sort((a, b) => a - b);
  for (const depth of depths) {
    const ring = nodes.filter((n) => n.depth === depth);
    if (depth === 0) {
      ring.forEach((n) => { at.set(n.id, [SIZE / 2, SIZE / 2]); angle.set(n.id, 0); });
      continue;
    }
    const anchor = (n) => {
      const inward = edges.filter((e) => e.source === n.id || e.target === n.id)
        .map((e) => (e.source === n.id ? e.target : e.source)).filter((id) => angle.has(id) && id !== n.id);
      return inward.length ? inward.reduce((sum, id) => sum + angle.get(id), 0) / inward.length : 0;
    };
    const ordered = ring.map((n) => [n, anchor(n)]).sort((x, y) => x[1] - y[1]);
    const k = ordered.length;
    const centre = ordered.reduce((sum, [, a]) => sum + a, 0) / k;
    ordered.forEach(([n], i) => {
      // The first ring all round; outer rings in an arc behind what they hang from.
      const a = depth === 1 ? -Math.PI / 2 + (2 * Math.PI * i) / k
        : centre + (i - (k - 1) / 2) * Math.min(Math.PI / 3, Math.PI / k);
      angle.set(n.id, a);
      at.set(n.id, [SIZE / 2 + depth * RING * Math.cos(a), SIZE / 2 + depth * RING * Math.sin(a)]);
    });
  }
  return at;
}

const short = (text, n = 28) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

export async function render(section, state, { go, stale }) {
  if (!state.namespace || !state.memoryId) {
    section.replaceChildren(message("Open a memory's graph from the Memories view (its “Graph” button)."));
    return;
  }
  let graph;
  try {
    graph = await post("/v1/knowledge/graph", { agent_id: state.namespace, memory_id: state.memoryId, depth: 2 });
  } catch (err) {
    if (!stale()) section.replaceChildren(failure(err, "Graph"));
    return;
  }
  if (stale()) return;
  const at = layout(graph.nodes, graph.edges);
  const edges = graph.edges.filter((e) => at.has(e.source) && at.has(e.target));
  const picture = s("svg", { id: "memory-graph", viewBox: `0 0 ${SIZE} ${SIZE}`, role: "img",
    "aria-label": `graph of memory ${state.memoryId}` },
    edges.map((e) => {
      const [x1, y1] = at.get(e.source);
      const [x2, y2] = at.get(e.target);
      return s("line", { class: "edge", x1, y1, x2, y2, "data-source": e.source, "data-target": e.target },
        s("title", {}, `shares ${(e.shared_entities || []).join(", ") || "entities"} (weight ${num(e.similarity)})`));
    }),
    graph.nodes.map((n) => {
      const [x, y] = at.get(n.id);
      return s("g", { class: n.depth === 0 ? "node root" : "node", "data-id": n.id,
        onclick: () => n.depth && go("graph", { memoryId: n.id }) },
        s("circle", { cx: x, cy: y, r: n.depth === 0 ? 14 : 9 }),
        s("text", { x, y: y + (n.depth === 0 ? 30 : 22), "text-anchor": "middle" }, short(n.content)),
        s("title", {}, n.content));
    }));
  section.replaceChildren(
    h("h2", {}, "Memory graph"),
    h("p", { class: "note" }, `${graph.nodes.length} memories, ${edges.length} links by shared entities. Click a memory to centre it.`),
    h("div", { class: "graph-pane" }, picture,
      h("ol", { id: "graph-nodes" }, graph.nodes.map((n) => h("li", { "data-depth": n.depth },
        h("span", { class: "depth" }, n.depth === 0 ? "this memory" : `depth ${n.depth}`), " ", n.content)))),
    edges.length ? h("ul", { id: "graph-edges" }, edges.map((e) => h("li", {},
      `${short(graph.nodes.find((n) => n.id === e.source).content)} ↔ ${short(graph.nodes.find((n) => n.id === e.target).content)}: `,
      (e.shared_entities || []).join(", ")))) : message("No other memory shares an entity with this one."));
}
