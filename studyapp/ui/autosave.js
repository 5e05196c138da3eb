// Autosave of the reading screen. Every save of a page goes through one event, the hidden "Save now" button, whose
// trigger mode sends one save at a time and lets a newer waiting save replace an older waiting one: the study's
// periodic timer and leaving the editor click it, and so does typing, when the reader pauses for a second and at
// least every second of continuous typing (a crash of the server costs at most the last second or so).
// window.studySave.next() labels each save snapshot "<page id>:<sequence>" for the server (studyapp/ui/tab_saves.py):
// saves of one page never count as "another tab", and a late, older snapshot changes nothing.
//
// It also tells the reader the truth about saving, in #save-progress (while it shows something, the server's own
// status line #save-status is hidden): "Saving..." from the moment a changed text is sent until the server
// acknowledges it (window.studySave.acknowledge, given the server's {sequence, saved} after each save), and
// "Not saved yet: the server is unreachable; ..." when a request to the server fails or a changed text stays
// unacknowledged for UNREACHABLE_MS. A text the server acknowledged is handed to window.studyLocal
// (local_copy.js), which then drops the browser's copy of it.
(() => {
  const PAUSE_MS = 1000;
  const MAX_WAIT_MS = 1000;
  const UNREACHABLE_MS = 20000;
  const NOT_SAVED = "Not saved yet: the server is unreachable; keep this page open, your text is kept in this browser";
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);  // (crypto.randomUUID needs a secure context; a site may serve plain HTTP)
  const page = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  let sequence = 0;
  let acknowledged = 0;  // the newest save sequence the server answered
  let storedText = null;  // the text the server holds for the case on screen, as far as this page knows
  let unreachable = false;  // the last request to the server failed without an answer
  const waiting = new Map();  // save sequence -> {assignment, text, sentAt, changed}: sent, not answered yet
  const editorText = () => document.querySelector("#report-editor textarea")?.value ?? "";
  const show = () => {
    const changed = [...waiting.values()].filter((save) => save.changed);
    const late = changed.some((save) => Date.now() - save.sentAt > UNREACHABLE_MS);
    const message = changed.length === 0 ? "" : (unreachable || late ? NOT_SAVED : "Saving...");
    const line = document.getElementById("save-progress");
    if (line && line.textContent !== message) line.textContent = message;
    document.documentElement.toggleAttribute("data-save-progress", message !== "");
  };
  setInterval(show, 1000);
  window.addEventListener("offline", () => { unreachable = true; show(); });

  // a request of the app that gets no answer at all (server down, network lost) makes "Saving..." "Not saved yet"
  const fetchOriginal = window.fetch.bind(window);
  window.fetch = async (resource, options) => {
    const ours = String(resource?.url ?? resource).includes("/gradio_api/");
    try {
      const response = await fetchOriginal(resource, options);
      if (ours) unreachable = response.status >= 502 && response.status <= 504;  // a proxy without its server
      return response;
    } catch (error) {
      if (ours && !(error && error.name === "AbortError")) { unreachable = true; show(); }
      throw error;
    }
  };

  window.studySave = {
    next() {
      sequence += 1;
      const text = editorText();
      waiting.set(sequence, { assignment: window.studyLocal ? window.studyLocal.assignment : null, text,
                              sentAt: Date.now(), changed: storedText !== null && text !== storedText });
      show();
      return `${page}:${sequence}`;
    },
    now() {
      clearTimeout(pending);
      pending = null;
      firstUnsaved = 0;
      const button = document.querySelector("#autosave-now");
      if (button) button.click();
    },
    // the server's answer to save `sequence` (studyapp/ui/reading_tab.py save_ack); older answers change nothing
    acknowledge(ack) {
      if (!ack || typeof ack.sequence !== "number" || ack.sequence <= acknowledged) return;
      acknowledged = ack.sequence;
      unreachable = false;
      const save = waiting.get(ack.sequence);
      for (const n of [...waiting.keys()]) if (n <= ack.sequence) waiting.delete(n);  // answered or replaced
      if (save && ack.saved) {
        storedText = save.text;
        if (window.studyLocal) window.studyLocal.stored(save.assignment, save.text);
      }
      show();
    },
    // a case was shown with the server's `text` (null: no editable case on screen)
    opened(text) {
      storedText = text;
      show();
    },
    // whether every changed text this page sent was answered
    settled() { return ![...waiting.values()].some((save) => save.changed); },
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
