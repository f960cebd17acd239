// Talking to the service: JSON requests with the login's CSRF token, errors in plain words.

const CSRF_COOKIE = "autocontour_csrf";
let csrfToken = "";

/** The CSRF token to send with POST/PUT/DELETE: the login's answer, else its cookie. */
export function setCsrf(token) { csrfToken = token || ""; }
export function csrf() {
  if (csrfToken) return csrfToken;
  const pair = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return pair ? decodeURIComponent(pair.slice(CSRF_COOKIE.length + 1)) : "";
}

/** An error the page can show as it is. `status` 0: the server could not be reached. */
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** A server's error answer in words: its `detail` (a string, or pydantic's list of problems). */
export function describe(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
  }
  if (status === 401) return "You are not logged in (or the login has expired).";
  if (status === 403) return "The server refused this request.";
  if (status === 404) return "Not found: it may have been removed, or it is not yours.";
  if (status === 413) return "The file is larger than the server accepts.";
  if (status >= 500) return `The server failed (${status}); try again later.`;
  return `The server answered ${status}.`;
}

let onUnauthorized = () => {};
/** Called when any request answers 401 (the login expired): the page shows the login form. */
export function whenUnauthorized(callback) { onUnauthorized = callback; }

/** fetch() a JSON API: the parsed answer (null for 204), or an ApiError. */
export async function api(path, { method = "GET", json, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let answer;
  try {
    answer = await fetch(path, {
      method, headers, signal, credentials: "same-origin",
      body: json === undefined ? undefined : JSON.stringify(json),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The server cannot be reached. Check the connection and try again.");
  }
  if (answer.status === 204) return null;
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    if (answer.status === 401 && path !== "/api/login") onUnauthorized();
    throw new ApiError(answer.status, describe(answer.status, body));
  }
  return body;
}

/** POST a FormData with XMLHttpRequest (fetch cannot report upload progress).
 *  onProgress(fraction) while the bytes go out; resolves with { status, body }. */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve({ status: xhr.status, body: xhr.response });
      } else {
        if (xhr.status === 401) onUnauthorized();
        reject(new ApiError(xhr.status, describe(xhr.status, xhr.response)));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0,
      "The upload did not reach the server (the connection broke, or the file is too large).")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "The upload was stopped.")));
    xhr.send(form);
  });
}

/** A date as the reader's locale writes it, e.g. "31 Jan 2026, 14:02". */
export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A small element builder: el("li", { class: "x", text: "y" }, child, ...). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}
