// Traffic: the whole service's requests and latency, second by second, refreshed every two
// seconds while this view is open (GET /v1/ops/traffic: an admin key granted every namespace).
import { get } from "./api.js";
import { failure, h, message, num, s, when } from "./dom.js";

const WINDOW_S = 120;
const REFRESH_MS = 2000;
const MAX_BACKOFF_MS = 30000;
let timer = null;

function chart(id, title, points, value, unit) {
  const W = 600, H = 140, pad = 28;
  const values = points.map(value);
  const top = Math.max(1, ...values.filter((v) => v !== null));
  const x = (i) => pad + (i * (W - pad - 4)) / Math.max(1, points.length - 1);
  const y = (v) => H - pad + 4 - (v / top) * (H - pad - 8);
  const path = values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean).join(" ");
  return h("figure", { class: "chart" }, h("figcaption", {}, title),
    s("svg", { id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
      s("line", { class: "axis", x1: pad, y1: H - pad + 4, x2: W - 4, y2: H - pad + 4 }),
      s("text", { class: "tick", x: 2, y: 12 }, `${num(top, 1)} ${unit}`),
      s("text", { class: "tick", x: 2, y: H - pad + 4 }, "0"),
      s("text", { class: "tick", x: pad, y: H - 6 }, `${WINDOW_S} s ago`),
      s("text", { class: "tick", x: W - 40, y: H - 6 }, "now"),
      s("polyline", { class: "line", points: path })));
}

function tile(id, label, value) {
  return h("div", { class: "tile", id }, h("span", { class: "value" }, value), h("span", { class: "label" }, label));
}

// One refresh: "ok", "refused" (the key may not see these figures: stop), or "failed"
// (no answer now: the last figures stay, with the error above them; try again later).
async function refresh(section, stale) {
  let t;
  try {
    t = await get(`/v1/ops/traffic?seconds=${WINDOW_S}`);
  } catch (err) {
    if (stale()) return "refused";
    if (err.status === 401 || err.status === 403) {
      section.replaceChildren(err.status === 403
        ? message("Live figures are every tenant's traffic together: they need an admin key granted every namespace.", "note traffic-refused")
        : failure(err, "Traffic"));
      return "refused";
    }
    const shown = section.querySelector(".traffic-error");
    const note = failure(err, "Traffic (trying again)");
    note.classList.add("traffic-error");
    if (shown) shown.replaceWith(note); else section.prepend(note);
    return "failed";
  }
  if (stale()) return "refused";
  const last10 = t.series.slice(-10);
  const recent = last10.reduce((sum, p) => sum + p.requests, 0) / Math.max(1, last10.length);
  section.replaceChildren(
    h("h2", {}, "Traffic"),
    h("p", { class: "note" }, `Every Router replica (${t.replicas_reporting} reporting${t.partial ? "; board unreachable: this replica only" : ""}), the last ${t.window_seconds} s, to ${when(t.now)}.`),
    h("div", { class: "tiles" },
      tile("rate-now", "requests/s, last 10 s", num(recent, 1)),
      tile("requests-window", `requests, last ${t.window_seconds} s`, t.totals.requests),
      tile("p50", "p50 latency (ms)", num(t.totals.p50_ms, 1)),
      tile("p95", "p95 latency (ms)", num(t.totals.p95_ms, 1)),
      tile("p99", "p99 latency (ms)", num(t.totals.p99_ms, 1)),
      tile("client-errors", "4xx", t.totals.client_error),
      tile("shed", "429/503 (limits, overload)", t.totals.shed),
      tile("server-errors", "5xx", t.totals.server_error)),
    chart("chart-requests", "Requests per second", t.series, (p) => p.requests, "req/s"),
    chart("chart-p95", "p95 latency per second (ms)", t.series, (p) => p.p95_ms, "ms"));
  return "ok";
}

// One refresh at a time, the next scheduled when this one is done (a slow answer never
// piles requests up), further apart after failures; none while the tab is hidden; a view
// left stops the chain.
export async function render(section, state, { stale }) {
  leave();
  const chain = {};
  timer = chain;
  let delay = REFRESH_MS;
  const next = async () => {
    if (timer !== chain || stale()) return;
    const outcome = document.hidden ? "ok" : await refresh(section, stale);
    if (outcome === "refused" || timer !== chain) return;
    delay = outcome === "ok" ? REFRESH_MS : Math.min(delay * 2, MAX_BACKOFF_MS);
    chain.id = setTimeout(next, delay);
  };
  await next();
}

export function leave() {
  if (timer !== null) clearTimeout(timer.id);
  timer = null;
}
