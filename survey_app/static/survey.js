// Progressive enhancement: the pages work without this file; with it, each answer is saved the moment it is
// given, keyboard shortcuts work, and the consent form reports the viewport size.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const viewport = document.getElementById("viewport");
  if (viewport) viewport.value = `${window.innerWidth}x${window.innerHeight}`;
  const form = document.getElementById("trial-form");
  if (form) enhanceTrial(form);
});

function enhanceTrial(form) {
  const shownAt = performance.now();
  const status = document.getElementById("save-status");
  const fieldsets = Array.from(form.querySelectorAll("fieldset[data-question]"));
  const allSaved = () => fieldsets.every((fieldset) => fieldset.classList.contains("saved"));

  async function save(input) {
    const fieldset = input.closest("fieldset");
    const body = new FormData();
    body.append("csrf_token", form.elements.csrf_token.value);
    body.append("rt_ms", String(Math.round(performance.now() - shownAt)));
    body.append(input.name, input.value);
    status.textContent = "Saving…";
    try {
      const response = await fetch(form.action, {
        method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      const reply = await response.json();
      if (!response.ok) throw new Error(reply.error || response.statusText);
      const stored = fieldset.querySelector(`input[value="${reply.answers[input.name]}"]`);
      if (stored) stored.checked = true;
      fieldset.classList.add("saved");
      fieldset.disabled = true;
      status.textContent = allSaved() ? "Saved. Press Enter or Next to continue." : "Saved.";
    } catch (error) {
      status.textContent = `Not saved (${error.message}). Check your connection and try again.`;
    }
  }

  form.addEventListener("change", (event) => {
    if (event.target.type === "radio") save(event.target);
  });
  form.addEventListener("submit", (event) => {
    if (allSaved()) {
      event.preventDefault();
      window.location.assign(form.dataset.nextUrl);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    const open = fieldsets.find((fieldset) =>
      !fieldset.disabled && fieldset.querySelector(`input[data-key="${CSS.escape(event.key)}"]`));
    if (!open) return;
    const input = open.querySelector(`input[data-key="${CSS.escape(event.key)}"]`);
    input.checked = true;
    save(input);
  });
}
