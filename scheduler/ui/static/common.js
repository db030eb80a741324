// What both pages share: the API client (the token lives in sessionStorage, one per browser
// tab session), the sign-in form, and small formatting and DOM helpers.

const TOKEN_KEY = "tekscore.token";
export const FINISHED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
export const STATES = [
  "PENDING", "INSTALLING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "CANCELLED",
];

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Call the JSON API (`text: true` for a plain-text answer); the token goes as a bearer. */
export async function api(path, { method = "GET", text = false } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers });
  if (!response.ok && response.status !== 409) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = body.detail || JSON.stringify(body);
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return text ? response.text() : response.json();
}

/** The page header and the sign-in form, the same on every page (`current`: the nav link of
 * this page, or none). */
function mountChrome(current) {
  const link = (href, text) => el("a", { href, "aria-current": href === current ? "page" : null, text });
  document.getElementById("top").replaceChildren(
    el("a", { class: "brand", href: "/ui/", text: "tekscore" }),
    link("/ui/", "Jobs"),
    link("/docs", "API"),
    el("span", { class: "spacer" }),
    el("span", { class: "who", id: "who" }),
    el("button", { type: "button", id: "sign-out", hidden: true, text: "Sign out" }),
  );
  document.getElementById("sign-in").replaceChildren(el("form", {},
    el("h1", { id: "sign-in-title", text: "Sign in" }),
    el("p", {
      class: "muted",
      text: "This server asks for an API token. It is kept in this browser tab's session only, "
        + "and sent with every call to the API.",
    }),
    el("div", { class: "field" },
      el("label", { for: "token", text: "API token" }),
      el("input", {
        id: "token", name: "token", type: "password", autocomplete: "current-password", required: true,
      })),
    el("p", { class: "error-text", role: "alert" }),
    el("button", { type: "submit", class: "primary", text: "Sign in" })));
}

/** The caller's role (`/api/v1/userinfo`); asks for a token (and keeps it) until the API
 * accepts one. `current`: this page's nav link. */
export async function signIn(current = null) {
  mountChrome(current);
  for (;;) {
    try {
      const who = await api("/api/v1/userinfo");
      showUser(who);
      return who;
    } catch (error) {
      if (!(error instanceof ApiError) || (error.status !== 401 && error.status !== 403)) throw error;
      const had = sessionStorage.getItem(TOKEN_KEY);
      sessionStorage.removeItem(TOKEN_KEY);
      await askToken(had ? "The server did not accept that token." : "");
    }
  }
}

function askToken(problem) {
  const main = document.getElementById("main");
  const section = document.getElementById("sign-in");
  const form = section.querySelector("form");
  const input = section.querySelector("input");
  main.hidden = true;
  section.hidden = false;
  section.querySelector(".error-text").textContent = problem;
  input.value = "";
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      section.hidden = true;
      main.hidden = false;
      resolve();
    }, { once: true });
  });
}

function showUser(who) {
  const label = document.getElementById("who");
  const out = document.getElementById("sign-out");
  if (!who.authenticated) {
    label.textContent = "no API tokens on this server";
    return;
  }
  label.textContent = `signed in: ${who.role}`;
  out.hidden = false;
  out.onclick = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    window.location.reload();
  };
}

/** An element with attributes (`class`, `text`, any other as an attribute) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.setAttribute("class", value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function stateBadge(state) {
  return el("span", { class: `state ${state}`, text: state });
}

export function when(iso) {
  if (!iso) return el("span", { class: "muted", text: "—" });
  const at = new Date(iso);
  return el("time", { datetime: iso, title: iso, text: at.toLocaleString() });
}

export function duration(start, end) {
  if (!start) return "—";
  const seconds = Math.max(0, ((end ? new Date(end) : new Date()) - new Date(start)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function number(value) {
  return (value ?? 0).toLocaleString("en-US");
}

/** Run `tick` now and then every `ms` while the page is visible and `active()` holds. */
export function every(ms, tick, active = () => true) {
  let timer = null;
  const run = async () => {
    timer = null;
    if (document.visibilityState === "visible" && active()) {
      try { await tick(); } catch (error) { report(error); }
    }
    timer = setTimeout(run, ms);
  };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer !== null) {
      clearTimeout(timer);
      run();
    }
  });
  run();
}

/** Say what went wrong in the page's status line (screen readers hear it). */
export function report(error) {
  const line = document.getElementById("status");
  if (line) line.textContent = error ? `Could not reach the server: ${error.message}` : "";
}
