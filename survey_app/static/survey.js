// Progressive enhancement: the pages work without this file (the Next button sends the form). With it, each answer
// is saved the moment it is given (and again when changed), keyboard shortcuts work on computers, the consent form
// reports the viewport size, and a second click on a button that sends a form does nothing.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const viewport = document.getElementById("viewport");
  if (viewport) viewport.value = `${window.innerWidth}x${window.innerHeight}`;
  for (const form of document.querySelectorAll("form.once")) sendOnce(form);
  for (const button of document.querySelectorAll("button[data-copy]")) offerCopy(button);
  const trialForm = document.getElementById("trial-form");
  if (trialForm) enhanceTrial(trialForm);
  const voice = document.getElementById("voice");
  if (voice && trialForm) reportPlays(voice, trialForm);
  const timed = document.getElementById("timed");
  if (timed) timeExposure(timed);
});

// Timed hype trials (HYPE, Zhou et al. 2019): a 3-2-1 countdown of 500 ms steps, the face for its exposure time, then
// a noise mask in its place. The face is shown once; the answer follows.
function timeExposure(timed) {
  const button = document.getElementById("show-face");
  const countdown = document.getElementById("countdown");
  const figure = timed.querySelector("figure");
  const mask = timed.querySelector(".mask");
  const image = figure.querySelector("img");
  const step = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
  button.addEventListener("click", async () => {
    button.hidden = true;
    for (const number of ["3", "2", "1"]) {
      countdown.textContent = number;
      await step(500);
    }
    countdown.textContent = "";
    figure.hidden = false;
    await step(Number(timed.dataset.exposureMs));
    image.style.visibility = "hidden";
    mask.hidden = false;
  }, { once: true });
}

// Audio trials: every play and every end of the clip is reported to the server, which accepts answers only after a
// play that lasted the clip's length on its own clock (survey_app.playback). Until then the answers look disabled.
function reportPlays(voice, form) {
  const audio = document.getElementById("clip");
  const button = document.getElementById("play");
  const note = document.getElementById("play-note");
  if (voice.dataset.played !== "true") form.classList.add("awaiting-play");
  form.addEventListener("submit", (event) => { // before the other submit handlers (capture): nothing is sent yet
    if (!form.classList.contains("awaiting-play")) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    document.getElementById("save-status").textContent = "Please play the voice to the end before answering.";
  }, true);
  let queue = Promise.resolve();
  function report(event) {
    const body = new FormData();
    body.append("csrf_token", form.elements.csrf_token.value);
    body.append("event", event);
    if (Number.isFinite(audio.duration)) body.append("duration_ms", String(Math.round(audio.duration * 1000)));
    queue = queue.then(async () => {
      try {
        const reply = await postForJson(voice.dataset.playsUrl, body);
        if (reply.played) {
          form.classList.remove("awaiting-play");
          note.textContent = "Played. You can play it again, and answer now.";
        }
      } catch (error) {
        note.textContent = `${error.message}`;
      }
    });
  }
  audio.addEventListener("play", () => { note.textContent = "Playing…"; report("play"); });
  audio.addEventListener("ended", () => report("ended"));
  button.addEventListener("click", () => {
    audio.currentTime = 0;
    audio.play().catch((error) => { note.textContent = `The sound could not play (${error.message}).`; });
  });
}

// POSTs a form and returns the JSON reply; a refusal throws the server's message.
async function postForJson(url, body) {
  const response = await fetch(url, {
    method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin",
  });
  const reply = await response.json();
  if (!response.ok) throw new Error(reply.error || response.statusText);
  return reply;
}

function offerCopy(button) {
  if (!navigator.clipboard) return; // only on HTTPS and localhost: the text can still be selected and copied
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(document.getElementById(button.dataset.copy).textContent);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Select the link and copy it";
    }
  });
}

function sendOnce(form) {
  window.addEventListener("pageshow", () => { // back to this page: its buttons work again
    delete form.dataset.sent;
    for (const button of form.querySelectorAll("button")) button.removeAttribute("aria-disabled");
  });
  form.addEventListener("submit", (event) => {
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    for (const button of form.querySelectorAll("button")) button.setAttribute("aria-disabled", "true");
  });
}

function enhanceTrial(form) {
  const shownAt = performance.now();
  const status = document.getElementById("save-status");
  const nextButton = document.getElementById("next");
  let queue = Promise.resolve(); // saves go one at a time, in the order the answers were given
  let pending = 0;

  function save(input) {
    const fieldset = input.closest("fieldset");
    const note = fieldset.querySelector(".saved-note");
    const body = new FormData();
    body.append("csrf_token", form.elements.csrf_token.value);
    body.append("rt_ms", String(Math.round(performance.now() - shownAt)));
    body.append(input.name, input.value);
    pending += 1;
    fieldset.classList.remove("saved");
    note.textContent = "Saving…";
    queue = queue.then(async () => {
      try {
        await postForJson(form.action, body);
        if (input.checked) {
          fieldset.classList.add("saved");
          note.textContent = "Saved. You can still change it.";
        }
        status.textContent = "";
      } catch (error) {
        note.textContent = "";
        if (form.classList.contains("awaiting-play")) { // refused until the voice has played: not chosen yet
          input.checked = false;
          status.textContent = error.message;
          return;
        }
        status.textContent = `Not saved (${error.message}). Check your connection and try again.`;
      } finally {
        pending -= 1;
      }
    });
  }

  form.addEventListener("change", (event) => {
    if (event.target.type === "radio") save(event.target);
  });
  sendOnce(form);
  form.addEventListener("submit", () => {
    form.elements.rt_ms.value = String(Math.round(performance.now() - shownAt));
    if (pending) status.textContent = "Saving…";
  });
  if (window.matchMedia("(pointer: coarse)").matches) return; // a touch screen: no keyboard shortcuts
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit(nextButton);
      return;
    }
    if (event.key === " " && document.getElementById("play")) {
      event.preventDefault();
      document.getElementById("play").click();
      return;
    }
    // Each key names one option of the page (quality 1-5, recognition y/n/s, lineup 1-N, ...).
    const input = form.querySelector(`input[data-key="${CSS.escape(event.key)}"]`);
    if (!input || input.checked) return;
    input.checked = true;
    save(input);
  });
}
