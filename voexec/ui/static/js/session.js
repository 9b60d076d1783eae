// The session page, live: polls the broker's JSON API every second and, when the phase or the
// session changes, re-renders the changing part from the server (one template for both).
// Stops when the session has ended, pauses while the tab is hidden.

import { announce, fetchPartial, localiseTimes, showError, startCountdowns, updateSession } from "./common.js";

const POLL_MS = 1000;
const region = document.getElementById("session-region");
const uuid = region.dataset.session;
const api = region.dataset.api;
let timer = null;

function current() {
  const body = region.firstElementChild;
  return {
    phase: body ? body.dataset.phase : "",
    terminal: body ? body.dataset.terminal === "true" : false,
    stamp: body ? stamp(body.dataset.phase, body.dataset.modified) : "",
  };
}

/** What identifies a version of the session: its phase and when it last changed. */
function stamp(phase, modified) {
  return `${phase}|${modified ? Date.parse(modified) : ""}`;
}

async function rerender() {
  const hadFocus = region.contains(document.activeElement);
  const before = current().phase;
  const answer = await fetchPartial(location.pathname, "session");
  if (!answer.ok) return;
  region.innerHTML = answer.html;
  localiseTimes(region);
  const after = current().phase;
  if (after !== before) announce(`The session is now ${after}.`);
  if (hadFocus) {
    const heading = region.querySelector("[data-focus-after-update]") || region.querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus(); }
  }
}

async function poll() {
  timer = null;
  if (document.hidden) return; // resumed by visibilitychange
  try {
    const response = await fetch(api, { headers: { Accept: "application/json" } });
    if (response.ok) {
      const session = await response.json();
      if (stamp(session.phase, session.meta && session.meta.modified) !== current().stamp) await rerender();
    }
  } catch (error) {
    // The network hiccupped: try again on the next tick.
  }
  if (!current().terminal) timer = setTimeout(poll, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && timer === null && !current().terminal) poll();
});

document.addEventListener("countdown-end", () => rerender());

region.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-update]");
  if (!form) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const buttons = region.querySelectorAll("form[data-update] button");
  for (const button of buttons) button.disabled = true;
  let box = region.querySelector("#update-error");
  try {
    await updateSession(uuid, form.dataset.update);
  } catch (error) {
    for (const button of buttons) button.disabled = false;
    if (!box) {
      box = document.createElement("div");
      box.id = "update-error";
      box.className = "notice danger";
      box.setAttribute("role", "alert");
      region.prepend(box);
    }
    showError(box, error.message, error.signIn);
    return;
  }
  await rerender();
  if (timer === null && !current().terminal) poll();
});

startCountdowns();
if (!current().terminal) poll();
