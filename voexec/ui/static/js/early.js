// Loaded in <head> before the page is drawn (a classic script, not a module), so the styles for
// pages with scripts apply from the first paint. A file of its own rather than inline code: the
// pages' Content-Security-Policy allows scripts from this site only.
document.documentElement.classList.add("js");
