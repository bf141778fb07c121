// Keys: the signed-in key and its grants; with an admin key, the keys it may manage.
import { get } from "./api.js";
import { failure, h, message, table, when } from "./dom.js";

const grants = (namespaces) => namespaces === null ? "every namespace" : (namespaces.length ? namespaces.join(", ") : "none");

function limits(l) {
  const parts = [];
  if (l.requests_per_second !== null) parts.push(`${l.requests_per_second}/s (burst ${l.burst})`);
  if (l.memories_per_namespace !== null) parts.push(`${l.memories_per_namespace} memories per namespace`);
  if (l.stored_bytes !== null) parts.push(`${l.stored_bytes} bytes`);
  return parts.length ? parts.join(", ") : "none";
}

export async function render(section, state, { stale }) {
  const me = state.whoami;
  const parts = [
    h("h2", {}, "This key"),
    h("dl", { id: "this-key" },
      h("dt", {}, "Name"), h("dd", {}, me.name),
      h("dt", {}, "Key id"), h("dd", {}, me.key_id),
      h("dt", {}, "Scope"), h("dd", {}, me.scope),
      h("dt", {}, "Grants"), h("dd", { id: "this-key-grants" }, grants(me.namespaces)),
      h("dt", {}, "Expires"), h("dd", {}, me.expires_at ? when(me.expires_at) : "never")),
    h("h2", {}, "Keys this key manages"),
  ];
  try {
    const { keys } = await get("/admin/keys");
    parts.push(h("div", { id: "keys-table" }, table([
      ["Name", (k) => k.name], ["Key id", (k) => k.key_id], ["Scope", (k) => k.scope],
      ["Grants", (k) => grants(k.namespaces)], ["Limits", (k) => limits(k.limits)],
      ["Created", (k) => when(k.created_at)], ["Expires", (k) => k.expires_at ? when(k.expires_at) : "never"],
    ], keys)));
  } catch (err) {
    parts.push(err.status === 403
      ? message("Listing keys needs an admin key: this key sees only itself.", "note keys-refused")
      : failure(err, "Keys"));
  }
  if (!stale()) section.replaceChildren(...parts);
}
