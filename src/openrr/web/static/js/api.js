// The control plane's HTTP APIs: the STS, the 2021-01-01 session and conversion APIs, v1 create (the only
// call that preloads models), connect tokens and the model library. Every failure becomes an ApiError with a readable message.
// The offer relay is openrr.js's (the connection's module, which embedding pages use too).

import { describeFailure } from "./openrr.js";

export const API_VERSION = "2021-01-01";

// The control plane's root: this module is served at <root>/ui/js/api.js. Relative, so the pages also work
// behind a proxy that serves openrr under a path prefix.
const ROOT = new URL("../../", import.meta.url);

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: no answer at all)
   * @param {string} code the error code of the body (`ClientAlreadyConnected`, …) or one made from the status
   * @param {string} message readable text for people
   * @param {number} retryAfter seconds from a Retry-After header, else 0
   */
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The ApiError for a failed response (what it says: openrr.js's `describeFailure`). */
async function failure(response) {
  const { status, code, message, retryAfter } = await describeFailure(response);
  const text = status === 429 ? `Too many requests for this account; try again in ${retryAfter || 1} s.` : message;
  return new ApiError(status, code, text, retryAfter);
}

async function request(method, path, { token, json, query, authorization, signal } = {}) {
  const url = new URL(path, ROOT);
  for (const [key, value] of Object.entries(query || {})) url.searchParams.set(key, value);
  const headers = { Accept: "application/json" };
  if (authorization || token) headers.Authorization = authorization || `Bearer ${token}`;
  const init = { method, headers, cache: "no-store", credentials: "omit", signal };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "NetworkError", "The openrr service could not be reached. Check the connection.");
  }
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, "BadAnswer", "The service sent an answer that is not JSON.");
  }
}

const ACCOUNT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Exchange an account id and key for an access token at the STS. */
export async function fetchToken(accountId, accountKey) {
  const id = accountId.trim();
  if (!ACCOUNT_ID.test(id)) {
    throw new ApiError(400, "BadRequest", "The account id is a UUID, such as 0f19e115-3d08-405f-be41-86c960260416.");
  }
  try {
    const body = await request("GET", `accounts/${id}/token`, { authorization: `Bearer ${id}:${accountKey.trim()}` });
    if (!body || typeof body.AccessToken !== "string") {
      throw new ApiError(200, "BadAnswer", "The token service sent no access token.");
    }
    return { accountId: id.toLowerCase(), token: body.AccessToken };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      throw new ApiError(401, "Unauthorized", "Wrong account id or key.");
    }
    throw err;
  }
}

/** v1 leases are .NET timespans: 90 → "1:30:00", 1440 → "1.00:00:00". */
export function leaseTimespan(minutes) {
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = String(minutes % 60).padStart(2, "0");
  return `${days ? `${days}.` : ""}${days ? String(hours).padStart(2, "0") : hours}:${rest}:00`;
}

/**
 * The inspector page of a Ready session's render server, with the token in the fragment (never sent).
 * `base` is the connect token's `inspectorUrl` (https where render servers serve TLS); without it, http.
 */
export function inspectorUrl(session, token, base = null) {
  if (!session.hostname || !session.arrInspectorPort) return null;
  const host = session.hostname.includes(":") && !session.hostname.startsWith("[") ? `[${session.hostname}]` : session.hostname;
  const origin = base && /^https?:\/\//.test(base) ? base.replace(/\/+$/, "") : `http://${host}:${session.arrInspectorPort}`;
  return `${origin}/#token=${encodeURIComponent(token)}`;
}

/** The session API of one signed-in account. */
export class Api {
  constructor(accountId, token) {
    this.accountId = accountId;
    this.token = token;
  }

  _sessions(suffix = "") {
    return `accounts/${encodeURIComponent(this.accountId)}/sessions${suffix}`;
  }

  _call(method, suffix, options = {}) {
    return request(method, this._sessions(suffix), {
      token: this.token,
      ...options,
      query: { "api-version": API_VERSION, ...(options.query || {}) },
    });
  }

  /** Every item of a paged 2021 list (`{key: [...], "@nextLink": ...}`), following $skipToken. */
  async _listAll(path, key) {
    const items = [];
    let skipToken = null;
    for (let page = 0; page < 100; page += 1) {
      const query = { "api-version": API_VERSION };
      if (skipToken) query.$skipToken = skipToken;
      const body = await request("GET", path, { token: this.token, query });
      items.push(...((body && body[key]) || []));
      const next = body && body["@nextLink"];
      if (!next) break;
      skipToken = new URL(next, ROOT).searchParams.get("$skipToken");
      if (!skipToken) break;
    }
    return items;
  }

  /** Every Starting and Ready session (the 2021 list, all pages). */
  listSessions() {
    return this._listAll(this._sessions(), "sessions");
  }

  /** Every asset conversion of the account, in the service's order (the 2021 list, all pages). */
  listConversions() {
    return this._listAll(`accounts/${encodeURIComponent(this.accountId)}/conversions`, "conversions");
  }

  getSession(id) {
    return this._call("GET", `/${encodeURIComponent(id)}`);
  }

  /** Create through the 2021 API: the caller picks the id. */
  createSession(id, size, leaseMinutes) {
    return this._call("PUT", `/${encodeURIComponent(id)}`, { json: { maxLeaseTimeMinutes: leaseMinutes, size } });
  }

  /** Create through v1, which alone preloads models; the service picks the id. Returns it. */
  async createSessionWithModels(size, leaseMinutes, models) {
    const body = await request("POST", `v1/${this._sessions("/create")}`, {
      token: this.token,
      json: { maxLeaseTime: leaseTimespan(leaseMinutes), models, size: size.toLowerCase() },
    });
    if (!body || typeof body.sessionId !== "string") {
      throw new ApiError(202, "BadAnswer", "The service did not say which session it created.");
    }
    return body.sessionId;
  }

  /** A connect token for the session's render server (`{token, expiresOn}`): the only credential it takes. */
  connectToken(id) {
    return request("POST", `openrr/${this._sessions(`/${encodeURIComponent(id)}/connectToken`)}`, { token: this.token });
  }

  /** Set a larger total lease (2021 PATCH). */
  extendLease(id, leaseMinutes) {
    return this._call("PATCH", `/${encodeURIComponent(id)}`, { json: { maxLeaseTimeMinutes: leaseMinutes } });
  }

  stopSession(id) {
    return this._call("POST", `/${encodeURIComponent(id)}/:stop`);
  }

  // ---- the model library (/openrr/accounts/{id}/models) ---------------------------------------------------
  _models(suffix = "") {
    return `openrr/accounts/${encodeURIComponent(this.accountId)}/models${suffix}`;
  }

  /** Every model of the account, oldest first. */
  async listModels() {
    const body = await request("GET", this._models(), { token: this.token });
    return (body && body.models) || [];
  }

  /** One model with its conversion's statistics and log. */
  getModel(id) {
    return request("GET", this._models(`/${encodeURIComponent(id)}`), { token: this.token });
  }

  renameModel(id, name) {
    return request("PATCH", this._models(`/${encodeURIComponent(id)}`), { token: this.token, json: { name } });
  }

  deleteModel(id) {
    return request("DELETE", this._models(`/${encodeURIComponent(id)}`), { token: this.token });
  }

  /**
   * Upload `files` ([{file, path}], path: the name in the model's folder) as one multipart request.
   * XMLHttpRequest rather than fetch: only it reports upload progress (`onProgress(sent, total)`).
   */
  uploadModel(files, onProgress = () => {}) {
    const form = new FormData();
    for (const { file, path } of files) form.append("file", file, path);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", new URL(this._models(), ROOT));
      xhr.setRequestHeader("Authorization", `Bearer ${this.token}`);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : 0);
      xhr.onerror = () => reject(new ApiError(0, "NetworkError", "The upload could not reach the openrr service."));
      xhr.onload = async () => {
        const response = new Response(xhr.responseText || null, {
          status: xhr.status,
          headers: { "Content-Type": xhr.getResponseHeader("Content-Type") || "application/json" },
        });
        if (!response.ok) reject(await failure(response));
        else resolve(JSON.parse(xhr.responseText));
      };
      xhr.send(form);
    });
  }
}

/** The builtin:// models every session can load: [{url, description}] (no credential needed). */
export async function builtinModels() {
  const body = await request("GET", "openrr/builtinModels");
  return (body && body.models) || [];
}
