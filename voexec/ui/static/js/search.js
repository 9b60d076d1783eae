// The search page, enhanced: filters apply at once, results change in place, the URL follows.
//
// Without this script the page still works (a GET form and links). With it, a change to a
// checkbox, the sort order or the text fetches the results region for the new URL (the
// server renders it with the page's own template), swaps it in, and pushes the URL, so links
// can be shared and the back button walks the searches back.

import { announce, fetchPartial, localiseTimes } from "./common.js";
import { attachSuggestions } from "./suggest.js";

const form = document.getElementById("search-form");
const region = document.getElementById("results-region");
const input = document.getElementById("q");
const FACETS = ["subject", "kind", "function", "gpu", "licence", "platform", "messenger"];
const opened = new Set(); // tree branches people opened ("facet:value")
const closed = new Set(); // ... and closed (the server opens branches that hold a choice)
let controller = null;

/** The URL of what the form says now (first page: any change restarts the results). */
function formUrl() {
  const data = new FormData(form);
  const params = new URLSearchParams();
  const text = (data.get("q") || "").trim();
  if (text) params.append("q", text);
  for (const facet of FACETS) for (const value of data.getAll(facet)) params.append(facet, value);
  const sort = data.get("sort");
  if (sort && sort !== "relevance") params.append("sort", sort);
  const query = params.toString();
  return query ? `/?${query}` : "/";
}

/** The X-Voexec-Open header: the branches to send open ("facet:value", values encoded). */
function openHeader() {
  const keys = [...opened].map((key) => {
    const at = key.indexOf(":");
    return `${key.slice(0, at)}:${encodeURIComponent(key.slice(at + 1))}`;
  });
  return keys.length ? { "X-Voexec-Open": keys.join(",") } : {};
}

function restoreBranches() {
  for (const toggle of region.querySelectorAll(".tree-toggle")) {
    if (closed.has(toggle.dataset.branch)) setBranch(toggle, false);
  }
}

/** Show or hide a branch whose values are on the page; false when they must be fetched. */
function setBranch(toggle, open) {
  const list = document.getElementById(toggle.getAttribute("aria-controls") || "");
  if (!list) return false;
  toggle.setAttribute("aria-expanded", String(open));
  list.classList.toggle("collapsed", !open);
  return true;
}

/** Show the results for `url`; `push` adds a history entry, `focus` finds what to re-focus. */
async function show(url, { push = true, focus = null } = {}) {
  if (controller) controller.abort();
  controller = new AbortController();
  region.classList.add("busy");
  region.setAttribute("aria-busy", "true");
  let answer;
  try {
    answer = await fetchPartial(url, "results", controller.signal, openHeader());
  } catch (error) {
    if (error.name === "AbortError") return;
    window.location.assign(url); // the network failed: let the browser show what it can
    return;
  }
  // A refused search (a text too long, say) is a whole error page: let the browser show it.
  if (!answer.ok) { window.location.assign(url); return; }
  const facetsWereOpen = region.querySelector(".facets.open") !== null;
  region.innerHTML = answer.html;
  region.classList.remove("busy");
  region.removeAttribute("aria-busy");
  if (push) history.pushState({ search: true }, "", url);
  restoreBranches();
  localiseTimes(region);
  if (facetsWereOpen) toggleFilters(true);
  const params = new URL(url, location.origin).searchParams;
  input.value = params.get("q") || "";
  const summary = region.querySelector("#results-summary");
  const text = summary ? summary.textContent.replace(/\s+/g, " ").trim() : "";
  document.title = `${params.get("q") ? `“${params.get("q")}”: search` : "Search executables"} · voexec`;
  announce(text);
  if (focus) {
    const target = focus(region);
    if (target) target.focus();
  }
}

function toggleFilters(open) {
  const panel = region.querySelector(".facets");
  const button = region.querySelector(".filters-toggle");
  if (!panel || !button) return;
  const now = open === undefined ? !panel.classList.contains("open") : open;
  panel.classList.toggle("open", now);
  button.setAttribute("aria-expanded", String(now));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  show(formUrl());
});

form.addEventListener("change", (event) => {
  const target = event.target;
  if (target === input) return; // the text waits for Enter or the button
  if (target.type === "checkbox" || target.name === "sort") {
    const { name, value, type } = target;
    show(formUrl(), {
      focus: (root) => [...root.querySelectorAll(`[name="${CSS.escape(name)}"]`)].find((el) => type !== "checkbox" || el.value === value),
    });
  }
});

form.addEventListener("click", (event) => {
  const toggle = event.target.closest(".tree-toggle");
  if (toggle) {
    const key = toggle.dataset.branch;
    const open = toggle.getAttribute("aria-expanded") !== "true";
    (open ? opened : closed).add(key);
    (open ? closed : opened).delete(key);
    if (!setBranch(toggle, open)) {
      // Its narrower values were not sent: ask for the same results with this branch open.
      show(location.pathname + location.search, {
        push: false,
        focus: (root) => root.querySelector(`.tree-toggle[data-branch="${CSS.escape(key)}"]`),
      });
    }
    return;
  }
  const more = event.target.closest("[data-show-more]");
  if (more) {
    const list = more.previousElementSibling;
    const showing = more.getAttribute("aria-expanded") !== "true";
    for (const item of list.querySelectorAll(":scope > li.extra")) item.classList.toggle("shown", showing);
    more.setAttribute("aria-expanded", String(showing));
    more.textContent = showing ? "Show fewer" : `Show all ${list.children.length}`;
    return;
  }
  if (event.target.closest(".filters-toggle")) { toggleFilters(); return; }
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.origin);
  if (url.origin === location.origin && url.pathname === "/") {
    event.preventDefault();
    show(url.pathname + url.search);
  }
});

window.addEventListener("popstate", () => show(location.pathname + location.search, { push: false }));

attachSuggestions(
  input,
  document.getElementById("q-suggestions"),
  {
    subjects: form.dataset.suggestSubjects,
    functions: form.dataset.suggestFunctions,
    entries: form.dataset.suggestEntries,
  },
  (kind, value) => {
    if (kind === "entry") { window.location.assign(`/executables/${encodeURIComponent(value)}`); return; }
    // A subject or function chosen from the list replaces the words typed for it.
    input.value = "";
    const url = new URL(formUrl(), location.origin);
    if (!url.searchParams.getAll(kind).includes(value)) url.searchParams.append(kind, value);
    show(url.pathname + url.search);
  },
);

history.replaceState({ search: true }, "", location.href);
