// The console's shell: sign-in, the namespace picker, and one view at a time (by #hash).
import { ApiError, forgetKey, get, useKey } from "./api.js";
import { h } from "./dom.js";
import * as graph from "./graph.js";
import * as keys from "./keys.js";
import * as memories from "./memories.js";
import * as namespaces from "./namespaces.js";
import * as sessions from "./sessions.js";
import * as traffic from "./traffic.js";

const VIEWS = { keys, namespaces, memories, graph, sessions, traffic };
// What the views share: who is signed in, the namespace picked, what to show next.
const state = { whoami: null, namespaces: [], namespace: null, memoryId: null, sessionId: null };
let current = null;
let renders = 0; // each view drawn gets a number; an answer for an older one is dropped

const $ = (id) => document.getElementById(id);

async function signIn(key) {
  useKey(key);
  try {
    state.whoami = await get("/v1/auth/whoami");
  } catch (err) {
    forgetKey();
    $("sign-in-error").textContent = err instanceof ApiError && err.status === 401
      ? "Engram does not know this key (or it has expired)." : `Cannot sign in: ${err.message}`;
    return false;
  }
  $("api-key").value = "";
  $("key-name").textContent = `${state.whoami.name} (${state.whoami.scope})`;
  await loadNamespaces();
  $("sign-in-view").hidden = true;
  $("tabs").hidden = false;
  $("who").hidden = false;
  return true;
}

async function loadNamespaces() {
  try {
    state.namespaces = (await get("/v1/agents")).map((a) => a.agent_id).sort();
    $("namespaces-error").textContent = "";
  } catch (err) {
    state.namespaces = [];
    $("namespaces-error").textContent = `namespaces unavailable: ${err.message}`;
  }
  if (!state.namespaces.includes(state.namespace)) pick(state.namespaces[0] || null);
  const picker = $("namespace");
  picker.replaceChildren(...state.namespaces.map((n) => h("option", { value: n }, n)));
  if (state.namespace) picker.value = state.namespace;
}

// Another namespace: what was open in the last one (a memory, a session) is closed.
function pick(namespace) {
  if (namespace !== state.namespace) Object.assign(state, { namespace, memoryId: null, sessionId: null });
  if (namespace) $("namespace").value = namespace;
}

function signOut(why = "") {
  forgetKey();
  renders++;
  if (current && current.leave) current.leave();
  current = null;
  Object.assign(state, { whoami: null, namespaces: [], namespace: null, memoryId: null, sessionId: null });
  for (const section of document.querySelectorAll(".view")) { section.hidden = true; section.replaceChildren(); }
  $("tabs").hidden = true;
  $("who").hidden = true;
  $("sign-in-view").hidden = false;
  $("api-key").value = "";
  $("sign-in-error").textContent = why;
  history.replaceState(null, "", "#");
}

// Open a view, with what it should show (go("graph", {namespace, memoryId})).
function go(view, changes = {}) {
  if ("namespace" in changes) pick(changes.namespace);
  const { namespace, ...rest } = changes;
  Object.assign(state, rest);
  if (location.hash !== `#${view}`) history.pushState(null, "", `#${view}`);
  show(view);
}

async function show(view) {
  if (!state.whoami) return;
  const name = VIEWS[view] ? view : "namespaces";
  if (current && current.leave) current.leave();
  current = VIEWS[name];
  const mine = ++renders;
  const stale = () => mine !== renders;
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
  const section = $(`view-${name}`);
  section.replaceChildren(h("p", { class: "note" }, "Loading…"));
  if (name === "namespaces") await loadNamespaces(); // new tenants since sign-in
  if (stale()) return;
  await current.render(section, state, { go, pick, stale });
}

function start() {
  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    if (await signIn($("api-key").value.trim())) show(location.hash.slice(1) || "namespaces");
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("namespace").addEventListener("change", (event) => {
    pick(event.target.value);
    show(location.hash.slice(1) || "namespaces");
  });
  window.addEventListener("popstate", () => show(location.hash.slice(1)));
  window.addEventListener("engram-key-refused", (event) => {
    if (state.whoami) signOut(`Signed out: ${event.detail || "Engram no longer accepts this key"}.`);
  });
}

start();
