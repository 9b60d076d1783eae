// Search suggestions: an ARIA 1.2 combobox over the vocabularies' suggest API and entry names.
//
// Typing two or more characters asks, in parallel, for UAT subjects, software functions and
// matching entries; the arrow keys move through them, Enter picks one, Escape closes the list.
// Picking a subject or function filters by it; picking an entry opens it.

const DELAY_MS = 150;
const MIN_LENGTH = 2;

function option(id, kind, value, label, what, typed) {
  const item = document.createElement("li");
  item.id = id;
  item.setAttribute("role", "option");
  item.setAttribute("aria-selected", "false");
  item.dataset.kind = kind;
  item.dataset.value = value;
  const text = document.createElement("span");
  const at = label.toLowerCase().indexOf(typed.toLowerCase());
  if (at >= 0) {
    const mark = document.createElement("mark");
    mark.textContent = label.slice(at, at + typed.length);
    text.append(label.slice(0, at), mark, label.slice(at + typed.length));
  } else {
    text.textContent = label;
  }
  const hint = document.createElement("span");
  hint.className = "what";
  hint.textContent = what;
  item.append(text, hint);
  return item;
}

function group(title) {
  const item = document.createElement("li");
  item.setAttribute("role", "presentation");
  item.className = "group";
  item.textContent = title;
  return item;
}

async function getJson(url, signal) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, signal });
    return response.ok ? await response.json() : null;
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return null; // a source that fails leaves its group out; the others still show
  }
}

/**
 * Attach suggestions to `input` (role=combobox) showing them in `listbox`.
 * `sources` has the URLs `subjects`, `functions`, `entries`; `onPick(kind, value)` acts on a choice.
 */
export function attachSuggestions(input, listbox, sources, onPick) {
  let timer = null;
  let controller = null;
  let active = -1;

  const options = () => [...listbox.querySelectorAll('[role="option"]')];

  function close() {
    listbox.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    const all = options();
    all.forEach((item, i) => item.setAttribute("aria-selected", String(i === index)));
    active = index;
    if (index >= 0 && all[index]) {
      input.setAttribute("aria-activedescendant", all[index].id);
      all[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  async function refresh() {
    const typed = input.value.trim();
    if (controller) controller.abort();
    if (typed.length < MIN_LENGTH) { close(); return; }
    controller = new AbortController();
    const q = encodeURIComponent(typed);
    let answers;
    try {
      answers = await Promise.all([
        getJson(`${sources.subjects}?q=${q}&limit=5`, controller.signal),
        getJson(`${sources.functions}?q=${q}&limit=4`, controller.signal),
        getJson(`${sources.entries}?q=${q}&limit=5`, controller.signal),
      ]);
    } catch (error) {
      return; // superseded by newer typing
    }
    const [subjects, functions, entries] = answers;
    listbox.replaceChildren();
    let n = 0;
    const add = (title, items, make) => {
      if (!items || !items.length) return;
      listbox.append(group(title));
      for (const item of items) listbox.append(make(item, `suggestion-${n++}`));
    };
    add("Executables", entries && entries.hits, (hit, id) => option(id, "entry", hit.id, hit.title, hit.name, typed));
    add("Subjects", subjects, (s, id) => option(id, "subject", s.term, s.label, "subject", typed));
    add("Functions", functions, (s, id) => option(id, "function", s.term, s.label, "function", typed));
    if (!n) { close(); return; }
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(-1);
  }

  function pick(item) {
    close();
    onPick(item.dataset.kind, item.dataset.value);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    const all = options();
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (listbox.hidden) { refresh(); return; }
      event.preventDefault();
      // Positions run from -1 (the text itself) to the last option, wrapping round.
      const next = event.key === "ArrowDown" ? active + 1 : active - 1;
      highlight(next >= all.length ? -1 : next < -1 ? all.length - 1 : next);
    } else if (event.key === "Enter" && !listbox.hidden && active >= 0 && all[active]) {
      event.preventDefault();
      pick(all[active]);
    } else if (event.key === "Escape" && !listbox.hidden) {
      event.preventDefault();
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  listbox.addEventListener("mousedown", (event) => {
    const item = event.target.closest('[role="option"]');
    if (item) { event.preventDefault(); pick(item); }
  });
}
