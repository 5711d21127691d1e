// The console's one script: progressive enhancement only — every page works without it.
// - a run's page follows the run live (server-sent events) and reloads for the summary;
// - the connection form disables Create as soon as a value changes after a test;
// - forms with data-confirm ask before they delete or reset;
// - after a submit, the errors or the test's result are brought into view.
"use strict";

// The event stream opens after the page has loaded: opened before, it would hold the
// page "loading" (the load event waits for it) for as long as the run goes.
window.addEventListener("load", () => followRun());

document.addEventListener("DOMContentLoaded", () => {
  guardCreate();
  confirmForms();
  showOutcome();
});

// After a submit, the page opens where its outcome is: the error list (focused, so it is
// read out), else a test's result.
function showOutcome() {
  const errors = document.getElementById("form-errors");
  if (errors) { errors.focus(); return; }
  const result = document.querySelector("#test-result [data-test], .import [role=status]");
  if (result) result.scrollIntoView({ block: "center" });
}

function followRun() {
  const run = document.querySelector("[data-run-events]");
  if (!run || !window.EventSource) return;
  const source = new EventSource(run.dataset.runEvents);
  source.addEventListener("run", (e) => {
    let v;
    try { v = JSON.parse(e.data); } catch (_) { return; }
    const status = run.querySelector("[data-run-status]");
    if (status) {
      status.dataset.runStatus = v.status;
      status.replaceChildren(badge(v.status));
    }
    // The connection's gateway counters, live while the tasks read.
    const gateway = run.querySelector("[data-run-gateway]");
    for (const k of ["requests", "retries", "unauthorized", "rate_limited"]) {
      const c = gateway && gateway.querySelector(`[data-g="${k}"]`);
      if (c && v.gateway) c.textContent = v.gateway[k];
    }
    for (const t of v.tasks) {
      const row = Array.from(run.querySelectorAll("tr[data-task]")).find((r) => r.dataset.task === t.name);
      if (!row) continue;
      const set = (k, text) => { const c = row.querySelector(`[data-k="${k}"]`); if (c) c.textContent = text; };
      const cell = row.querySelector('[data-k="status"]');
      if (cell) cell.replaceChildren(badge(t.status));
      set("records", t.records);
      set("commits", t.commits);
      // A task's own pages, requests and retries, counted as they go.
      set("pages", t.pages);
      set("requests", t.requests);
      set("retries", t.retries);
      const secs = t.seconds || v.seconds;
      set("rate", secs > 0 ? `${Math.round(t.records / secs)}/s` : "—");
      set("seconds", secs.toFixed(1));
    }
    if (v.finished) {
      source.close();
      // The summary is rendered by the server.
      window.location.reload();
    }
  });
}

function badge(status) {
  const s = document.createElement("span");
  s.className = `badge ${status}`;
  s.textContent = status.replace("_", " ");
  return s;
}

function guardCreate() {
  const form = document.querySelector("form[data-tested-form]");
  if (!form) return;
  const create = form.querySelector('button[value="create"]');
  if (!create) return;
  const changed = (e) => {
    if (e.target.type === "file" || create.disabled) return;
    create.disabled = true;
    const result = document.getElementById("test-result");
    if (result) result.textContent = "The values changed since the test: test the connection again.";
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
}

function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
}
