// The checks a reviewer makes by hand, run in each page by test_pages.py; returns the problems.
() => {
  const problems = [];
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} h1 elements`);
  for (const landmark of ["header", "nav", "main", "footer"]) {
    if (!document.querySelector(landmark)) problems.push(`no <${landmark}>`);
  }
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.name}`);
  }
  for (const el of document.querySelectorAll("a[href], button")) {
    if (!shown(el)) continue;
    const name = (el.getAttribute("aria-label") || el.textContent || el.title || "").trim();
    if (!name) problems.push(`nameless ${el.outerHTML.slice(0, 80)}`);
  }
  let previous = 0;
  for (const heading of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const level = Number(heading.tagName[1]);
    if (level > previous + 1) problems.push(`heading skips from h${previous} to h${level}: ${heading.textContent.trim().slice(0, 40)}`);
    previous = level;
  }
  const ids = new Map();
  for (const el of document.querySelectorAll("[id]")) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, count] of ids) if (count > 1) problems.push(`id ${id} used ${count} times`);
  for (const chart of document.querySelectorAll("svg.chart")) {
    if (chart.getAttribute("role") !== "img" || !chart.getAttribute("aria-labelledby")) problems.push("a chart without a description");
  }
  // Contrast (WCAG 2 AA): text against the first opaque background behind it.
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const colour = rgb(getComputedStyle(node).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] === 1)) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el) || el.closest("svg, .visually-hidden, [hidden]") || !shown(el)) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    if (Number(style.opacity) < 1 || el.closest("[disabled], .closed, .busy")) continue;
    const fore = luminance(rgb(style.color)), back = luminance(background(el));
    const ratio = (Math.max(fore, back) + 0.05) / (Math.min(fore, back) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: "${node.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}
