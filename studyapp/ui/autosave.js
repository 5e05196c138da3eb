// Autosave of the reading screen. Every save of a page goes through one event, the hidden "Save now" button, whose
// trigger mode sends one save at a time and lets a newer waiting save replace an older waiting one: the study's
// periodic timer and leaving the editor click it, and so does typing, when the reader pauses for a second and at
// least every 2 s of continuous typing (a crash costs at most a few seconds).
// window.studySave.next() labels each save snapshot "<page id>:<sequence>" for the server (studyapp/ui/tab_saves.py):
// saves of one page never count as "another tab", and a late, older snapshot changes nothing.
(() => {
  const PAUSE_MS = 1000;
  const MAX_WAIT_MS = 2000;
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);  // (crypto.randomUUID needs a secure context; a site may serve plain HTTP)
  const page = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  let sequence = 0;
  window.studySave = {
    next() { sequence += 1; return `${page}:${sequence}`; },
    now() {
      clearTimeout(pending);
      pending = null;
      firstUnsaved = 0;
      const button = document.querySelector("#autosave-now");
      if (button) button.click();
    },
  };
  let pending = null;
  let firstUnsaved = 0;
  document.addEventListener("input", (event) => {
    if (!event.target.closest || !event.target.closest("#report-editor")) return;
    const now = Date.now();
    if (!firstUnsaved) firstUnsaved = now;
    clearTimeout(pending);
    pending = setTimeout(window.studySave.now, now - firstUnsaved >= MAX_WAIT_MS ? 0 : PAUSE_MS);  // after the key
  }, { capture: true });
})();
