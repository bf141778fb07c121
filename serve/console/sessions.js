// Sessions: a namespace's sessions, and one's timeline (its start, its memories in order,
// its end and why it ended).
import { enc, get } from "./api.js";
import { failure, h, message, num, table, when } from "./dom.js";

async function timeline(sessionId) {
  const answer = await get(`/v1/sessions/${enc(sessionId)}/memories?limit=200`);
  const session = answer.session;
  const items = [...answer.memories].sort((a, b) => (a.created_at ?? 0) - (b.created_at ?? 0));
  return h("div", { id: "session-timeline" },
    h("h3", {}, `Session ${session.session_id}`),
    h("ol", { class: "timeline" },
      h("li", { class: "mark" }, h("time", {}, when(session.started_at)), " started",
        Object.keys(session.metadata || {}).length ? ` (${JSON.stringify(session.metadata)})` : ""),
      items.map((m) => h("li", { class: "memory-item", "data-id": m.id },
        h("time", {}, when(m.created_at)), " ", h("span", { class: "content" }, m.content),
        h("span", { class: "meta" }, ` ${m.memory_type}, importance ${num(m.importance, 2)}`))),
      session.ended_at
        ? h("li", { class: "mark" }, h("time", {}, when(session.ended_at)), ` ended (${session.ended_reason || "ended"})`,
          session.summary ? `: ${session.summary}` : "")
        : h("li", { class: "mark" }, `active, last activity ${when(session.last_activity_at)}`)));
}

export async function render(section, state, { stale }) {
  if (!state.namespace) {
    section.replaceChildren(message("Pick a namespace first."));
    return;
  }
  const ns = state.namespace;
  const detail = h("div", { id: "session-detail" });
  let opened = 0; // the last session clicked wins, whichever answer comes first
  const open = async (sessionId) => {
    const mine = ++opened;
    const current = () => !stale() && mine === opened;
    state.sessionId = sessionId;
    detail.replaceChildren(message("Loading…"));
    try {
      const drawn = await timeline(sessionId);
      if (current()) detail.replaceChildren(drawn);
    } catch (err) {
      if (current()) detail.replaceChildren(failure(err, `Session ${sessionId}`));
    }
  };
  let list;
  try {
    list = await get(`/v1/agents/${enc(ns)}/sessions?limit=100`);
  } catch (err) {
    if (!stale()) section.replaceChildren(failure(err, "Sessions"));
    return;
  }
  if (stale()) return;
  section.replaceChildren(
    h("h2", {}, `Sessions of ${ns}`),
    list.length ? h("div", { id: "sessions-table" }, table([
      ["Session", (x) => x.session_id], ["Started", (x) => when(x.started_at)],
      ["Ended", (x) => x.ended_at ? `${when(x.ended_at)} (${x.ended_reason || "ended"})` : "active"],
      ["Memories", (x) => x.memory_count],
    ], list, (x) => open(x.session_id))) : message("No sessions in this namespace."),
    detail);
  if (state.sessionId) await open(state.sessionId);
}
