// Every call the console makes: to this origin's API, with the signed-in key.
const KEY = "engram.console.key";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? `${body.error}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function savedKey() { return sessionStorage.getItem(KEY); }
export function saveKey(key) { sessionStorage.setItem(KEY, key); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

const RETRIES = 3; // a 429 or 503 (a limit, overload, a shard restarting) is tried again
const TIMEOUT_MS = 30000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${savedKey()}` };
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
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const enc = encodeURIComponent;
