// The offers page: live countdowns, and Accept / Reject without leaving the page.
//
// Without this script the buttons post a form to the page and come back; with it, the page
// posts the update as JSON to the same route, shows the reason when it is refused (an offer
// that just expired, a sign-in that ended), and goes to the session once an offer is accepted.

import { announce, showError, startCountdowns, updateSession } from "./common.js";

const errorBox = document.getElementById("update-error");

function closeOffer(card, phase) {
  card.classList.add("closed");
  const badge = card.querySelector("[data-phase]");
  if (badge) {
    badge.textContent = phase;
    badge.dataset.phase = phase;
    badge.className = "badge neutral";
  }
  for (const button of card.querySelectorAll("button")) button.disabled = true;
}

document.addEventListener("countdown-end", (event) => {
  const card = event.target.closest("[data-offer]");
  if (!card) return;
  closeOffer(card, "EXPIRED");
  const title = card.querySelector("h3");
  announce(`${title ? title.textContent.trim() : "An offer"} has expired.`);
});

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-update]");
  if (!form) return;
  event.preventDefault();
  const card = form.closest("[data-offer]");
  const phase = form.dataset.update;
  const buttons = card ? card.querySelectorAll("button") : form.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  showError(errorBox, "");
  try {
    await updateSession(card.dataset.offer, phase);
  } catch (error) {
    showError(errorBox, error.message, error.signIn);
    errorBox.focus();
    for (const button of buttons) button.disabled = false;
    return;
  }
  const next = form.querySelector('input[name="next"]');
  window.location.assign(next ? next.value : window.location.href);
});

if (errorBox) errorBox.tabIndex = -1;
startCountdowns();
