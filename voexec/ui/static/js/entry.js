// The entry page after a refused request: take the reader to the list of problems first.
const summary = document.getElementById("form-errors");
if (summary) summary.focus();
