// Memories: a namespace's newest, or what recall finds for a query, with each result's score
// parts (what the final score blends) and the channels that found it.
import { enc, get, post } from "./api.js";
import { failure, h, message, num, when } from "./dom.js";

// The parts of score_breakdown drawn as bars (each 0..1), in the order recall blends them.
const PARTS = ["relevance", "importance", "decay", "recency", "access", "time_match"];

function bars(breakdown) {
  return h("table", { class: "score-parts" }, h("tbody", {}, PARTS.filter((p) => p in breakdown).map((part) => {
    const value = Number(breakdown[part]) || 0;
    return h("tr", { "data-part": part },
      h("th", {}, part.replace("_", " ")),
      h("td", {}, h("span", { class: "bar" }, h("span", { class: "fill", style: null, "data-width": Math.max(0, Math.min(1, value)) }))),
      h("td", { class: "value" }, num(value)));
  })));
}

function channelScores(breakdown) {
  const scores = breakdown.channel_scores || {};
  const ranks = breakdown.ranks || {};
  const names = Object.keys({ ...scores, ...ranks });
  if (!names.length) return null;
  return h("p", { class: "channel-scores" }, names.map((c) =>
    h("span", {}, `${c}: score ${num(scores[c])}, rank ${ranks[c] ?? "—"}`)));
}

function card(memory, go, scored) {
  return h("article", { class: "memory", "data-id": memory.id },
    h("p", { class: "content" }, memory.content),
    h("p", { class: "meta" },
      scored ? h("strong", { class: "score" }, `score ${num(memory.score)}`) : null,
      scored ? h("span", { class: "channels" }, (memory.channels || []).map((c) => h("span", { class: "chip", "data-channel": c }, c))) : null,
      h("span", {}, `${memory.memory_type}, importance ${num(memory.importance, 2)}`),
      h("span", {}, when(memory.created_at)),
      memory.tags.length ? h("span", {}, `tags: ${memory.tags.join(", ")}`) : null),
    scored ? bars(memory.score_breakdown) : null,
    scored ? channelScores(memory.score_breakdown) : null,
    h("p", { class: "actions" },
      h("button", { type: "button", class: "show-graph", onclick: () => go("graph", { memoryId: memory.id }) }, "Graph"),
      memory.session_id ? h("button", { type: "button", class: "show-session",
        onclick: () => go("sessions", { sessionId: memory.session_id }) }, "Session") : null));
}

// Bar widths through the CSSOM: the CSP forbids inline style attributes.
function sizeBars(root) {
  for (const fill of root.querySelectorAll(".fill")) fill.style.width = `${Number(fill.dataset.width) * 100}%`;
}

export async function render(section, state, { go, stale }) {
  if (!state.namespace) {
    section.replaceChildren(message("Pick a namespace first (this key may read none that holds anything)."));
    return;
  }
  const ns = state.namespace;
  const results = h("div", { id: "memory-results" });
  const query = h("input", { id: "recall-query", type: "search", placeholder: "Recall: what are you looking for?" });
  let runs = 0; // the last query asked wins, whichever answer comes first
  const run = async () => {
    const mine = ++runs;
    const asked = query.value.trim();
    const current = () => !stale() && mine === runs;
    results.replaceChildren(message("Loading…"));
    try {
      let shown;
      if (asked) {
        const answer = await post("/v1/memory/recall", { agent_id: ns, query: asked, top_k: 20 });
        shown = [h("p", { class: "note" }, `${answer.memories.length} recalled for “${asked}”`),
          ...answer.memories.map((m) => card(m, go, true))];
      } else {
        const listing = await get(`/v1/agents/${enc(ns)}/memories?limit=50`);
        shown = [h("p", { class: "note" }, `The ${listing.length} newest memories`),
          ...listing.map((m) => card(m, go, false))];
      }
      if (!current()) return;
      results.replaceChildren(...shown);
      sizeBars(results);
    } catch (err) {
      if (current()) results.replaceChildren(failure(err, "Memories"));
    }
  };
  section.replaceChildren(
    h("h2", {}, `Memories of ${ns}`),
    h("form", { id: "recall-form", onsubmit: (e) => { e.preventDefault(); run(); } }, query, h("button", { type: "submit" }, "Recall")),
    results);
  await run();
}
