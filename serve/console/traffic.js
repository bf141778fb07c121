// Traffic: the whole service's requests and latency, second by second, refreshed every two
// seconds while this view is open (GET /v1/ops/traffic: an admin key's).
import { get } from "./api.js";
import { failure, h, message, num, s, when } from "./dom.js";

const WINDOW_S = 120;
const REFRESH_MS = 2000;
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

async function refresh(section) {
  let t;
  try {
    t = await get(`/v1/ops/traffic?seconds=${WINDOW_S}`);
  } catch (err) {
    section.replaceChildren(err.status === 403
      ? message("Live figures are the whole service's: they need an admin key.", "note traffic-refused")
      : failure(err, "Traffic"));
    return false;
  }
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
  return true;
}

// One refresh at a time, the next scheduled when this one is done (a slow answer never
// piles requests up); a view left stops the chain.
export async function render(section) {
  leave();
  const chain = {};
  timer = chain;
  const next = async () => {
    const ok = await refresh(section);
    if (ok && timer === chain) chain.id = setTimeout(next, REFRESH_MS);
  };
  await next();
}

export function leave() {
  if (timer !== null) clearTimeout(timer.id);
  timer = null;
}
