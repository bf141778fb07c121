// Namespaces: every one this key may read, with its counts; one's stats on click.
import { enc, get } from "./api.js";
import { failure, h, message, num, table, when } from "./dom.js";

const SHOWN = 200;

export async function render(section, state, { go, pick, stale }) {
  let agents;
  try {
    agents = await get("/v1/agents");
  } catch (err) {
    if (!stale()) section.replaceChildren(failure(err, "Namespaces"));
    return;
  }
  if (stale()) return;
  const detail = h("div", { id: "namespace-stats" });
  let opened = 0; // the last namespace clicked wins, whichever answer comes first
  const open = async (name) => {
    const mine = ++opened;
    try {
      const st = await get(`/v1/agents/${enc(name)}/stats`);
      if (stale() || mine !== opened) return;
      const types = Object.entries(st.memories_by_type).map(([t, n]) => `${t} ${n}`).join(", ") || "—";
      detail.replaceChildren(h("h3", {}, name), h("dl", {},
        h("dt", {}, "Memories"), h("dd", {}, st.total_memories),
        h("dt", {}, "By type"), h("dd", {}, types),
        h("dt", {}, "Sessions"), h("dd", {}, `${st.total_sessions} (${st.active_sessions} active)`),
        h("dt", {}, "Mean importance"), h("dd", {}, num(st.avg_importance)),
        h("dt", {}, "Oldest"), h("dd", {}, when(st.oldest_memory_at)),
        h("dt", {}, "Newest"), h("dd", {}, when(st.newest_memory_at))),
        h("p", {}, h("button", { type: "button", onclick: () => go("memories", { namespace: name }) }, "Browse memories"),
          " ", h("button", { type: "button", onclick: () => go("sessions", { namespace: name }) }, "Sessions")));
    } catch (err) {
      if (!stale() && mine === opened) detail.replaceChildren(failure(err, name));
    }
  };
  // A service of thousands of tenants: a filter, and the first SHOWN matches drawn.
  const listing = h("div", { id: "namespaces-table" });
  const filter = h("input", { id: "namespace-filter", type: "search", placeholder: "Filter namespaces" });
  const draw = () => {
    const wanted = filter.value.trim().toLowerCase();
    const matches = agents.filter((a) => a.agent_id.toLowerCase().includes(wanted));
    listing.replaceChildren(...[
      table([
        ["Namespace", (a) => a.agent_id], ["Memories", (a) => a.memory_count],
        ["Sessions", (a) => a.session_count], ["Active sessions", (a) => a.active_sessions],
      ], matches.slice(0, SHOWN), (a) => { pick(a.agent_id); open(a.agent_id); }),
      matches.length > SHOWN ? message(`${matches.length - SHOWN} more: filter to find them.`) : null,
    ].filter(Boolean));
  };
  filter.addEventListener("input", draw);
  draw();
  section.replaceChildren(
    h("h2", {}, `Namespaces (${agents.length})`),
    agents.length === 0 ? message("This key may read no namespace that holds anything yet.") : h("div", {}, filter, listing),
    detail);
  if (state.namespace) await open(state.namespace);
}
