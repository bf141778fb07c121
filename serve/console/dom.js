// Building the page: every piece of data goes in as text (never as HTML), so nothing a
// tenant stored can become markup or script.
const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, attrs, ...children) { return fill(document.createElement(tag), attrs, children); }
export function s(tag, attrs, ...children) { return fill(document.createElementNS(SVG_NS, tag), attrs, children); }

export function when(unix) {
  if (unix === null || unix === undefined) return "—";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function num(x, digits = 3) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(digits).replace(/\.?0+$/, "") || "0";
}

export function table(columns, rows, onRow) {
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
    h("tbody", {}, rows.map((row) => h("tr", {
      class: onRow ? "clickable" : null,
      onclick: onRow ? () => onRow(row) : null,
    }, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

export function message(text, kind = "note") { return h("p", { class: kind }, text); }

export function failure(err, what) {
  const reason = err && err.body && err.body.error ? err.body.error : String(err && err.message || err);
  return message(`${what}: ${reason}`, "error");
}
