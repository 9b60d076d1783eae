// Shared by every page: local times, countdowns, announcements, partial pages, session updates.
// Plain ES modules, no build step and no third-party code.

const PARTIAL_HEADER = "X-Voexec-Partial";

const thisYear = new Date().getFullYear();
const formats = new Map();

/** A short local date and time; the year only when it is not this year. */
function format(moment, seconds) {
  const key = `${seconds}|${moment.getFullYear() === thisYear}`;
  if (!formats.has(key)) {
    formats.set(key, new Intl.DateTimeFormat(undefined, {
      day: "numeric",
      month: "short",
      year: moment.getFullYear() === thisYear ? undefined : "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: seconds ? "2-digit" : undefined,
      timeZoneName: "short",
    }));
  }
  return formats.get(key).format(moment);
}

/** Rewrite <time data-local> elements (UTC from the server) to the reader's time zone. */
export function localiseTimes(root = document) {
  for (const element of root.querySelectorAll("time[data-local]")) {
    const moment = new Date(element.dateTime);
    if (Number.isNaN(moment.getTime())) continue;
    if (!element.title) element.title = element.textContent.trim();
    element.textContent = format(moment, element.hasAttribute("data-seconds"));
  }
}

/** Say something to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A new text node after a frame makes screen readers read it even when it repeats.
  requestAnimationFrame(() => { region.textContent = text; });
}

function clock(seconds) {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

let countdownTimer = null;

function tickCountdowns() {
  const now = Date.now();
  for (const element of document.querySelectorAll("[data-countdown]")) {
    const left = Math.max(0, Math.round((Date.parse(element.dataset.countdown) - now) / 1000));
    element.textContent = clock(left);
    element.classList.toggle("soon", left < 60);
    if (left === 0 && !element.dataset.expired) {
      element.dataset.expired = "true";
      element.dispatchEvent(new CustomEvent("countdown-end", { bubbles: true }));
    }
  }
}

/** Keep every [data-countdown="<ISO instant>"] element counting down (one timer per page). */
export function startCountdowns() {
  tickCountdowns();
  if (countdownTimer === null) countdownTimer = setInterval(tickCountdowns, 1000);
}

/** Fetch the changing part of a page (the server renders it with the same template). */
export async function fetchPartial(url, name, signal, headers = {}) {
  const response = await fetch(url, { headers: { ...headers, [PARTIAL_HEADER]: name }, signal, credentials: "same-origin" });
  return { ok: response.ok, status: response.status, html: await response.text() };
}

/** The readable reason of an error answer (problem details or broker messages), or a fallback. */
function reasonOf(body, response) {
  if (body && body.detail) return body.detail;
  const messages = (body && body.meta && body.meta.messages) || [];
  const texts = messages.map((m) => m.message || m.template).filter(Boolean);
  if (texts.length) return texts.join(" ");
  if (body && body.title) return body.title;
  return `voexec answered ${response.status} ${response.statusText}.`;
}

/**
 * Move a session to `phase`; throws an Error saying why not.
 *
 * Posts the broker's update to the page's own route (not /broker), so that the reader's
 * sign-in applies. When a sign-in is what is missing, the Error's `signIn` is the sign-in page.
 */
export async function updateSession(uuid, phase) {
  let response;
  try {
    response = await fetch(`/sessions/${encodeURIComponent(uuid)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ kind: "uri:enum-value-update", path: "phase", value: phase }),
      credentials: "same-origin",
    });
  } catch (error) {
    throw new Error("voexec could not be reached. Check your connection and try again.");
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      // Not JSON: the status line says what happened.
    }
    const problem = new Error(reasonOf(body, response));
    // Signing in comes back to this page, where the button was pressed.
    if (body && body.sign_in) problem.signIn = `/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw problem;
  }
  return response.json();
}

/** Show an error in a [role=alert] box, with a link to sign in when `signIn` names the page. */
export function showError(box, text, signIn) {
  if (!box) return;
  box.textContent = text || "";
  if (text && signIn) {
    const link = document.createElement("a");
    link.href = signIn;
    link.textContent = "Sign in";
    box.append(" ", link);
  }
  box.hidden = !text;
}

localiseTimes();
