// Every call the console makes: to this origin's API, with the signed-in key.
//
// The key lives in this module only, never in storage: another page of this origin (the
// API docs at /docs load Swagger UI from a CDN) could read sessionStorage or localStorage.
// A reload asks for the key again.
let key = null;

const RETRIES = 3; // a 429 or 503 (a limit, overload, a shard restarting) is tried again
const TIMEOUT_MS = 30000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? `${body.error}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function signedIn() { return key !== null; }
export function useKey(k) { key = k; }
export function forgetKey() { key = null; }

export async function api(method, path, body) {
  const sentWith = key;
  const headers = { Authorization: `Bearer ${sentWith}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  for (let attempt = 0; ; attempt++) {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit", signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (![429, 503].includes(response.status) || attempt === RETRIES) break;
    const wait = Number(response.headers.get("Retry-After")) || 1;
    await sleep(Math.min(wait, 5) * 1000);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401 && sentWith === key && key !== null) {
    // The key expired or was deleted meanwhile: back to the sign-in form, saying why.
    window.dispatchEvent(new CustomEvent("engram-key-refused", { detail: data && data.error }));
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

// A name as one path segment. "." and ".." would be resolved away by the URL (to another
// route), whatever their encoding: refused here, the API's query and body forms take them.
export function enc(name) {
  if (name === "." || name === "..") throw new ApiError(400, { error: `"${name}" cannot be named in a URL path` });
  return encodeURIComponent(name);
}
