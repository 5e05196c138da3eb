// The browser's copy of the reader's text, so that typing survives whatever happens to the server or the page.
// Every change in the editor is kept in localStorage as {text, seconds, at, tab} (the text, the active-time total,
// when, which tab) under "studyapp:text:<reader id>:<assignment id>" until the server acknowledges a save of exactly
// that text (autosave.js calls stored()). When a case is shown (opened(), after the server's screen arrived), a kept
// text the server lacks is restored by itself when the server's text is its beginning and this same tab kept it, or
// no tab has typed it for LIVE_TAB_MS (typing the server never got: a crash, a restart, an outage, an expired
// sign-in, a page closed too early); otherwise (another tab may be typing it now) it is offered beside the editor
// ("Use the kept text" / "Discard it"); it is never dropped silently. The key names the reader, so another
// account on a shared browser is never shown it; signing out first waits (up to SIGN_OUT_WAIT_MS) for the open
// case's last text to be saved, which drops its copy. Only the reader's own text and active time are kept: nothing
// about the case's arm or the draft's source.
(() => {
  const PREFIX = "studyapp:text:";
  const SIGN_OUT_WAIT_MS = 5000;
  // text another tab kept less than this long ago may be that tab typing right now: offered, never put in place
  // by itself (restoring it would save it over the live tab's next saves and refuse that tab as "another tab")
  const LIVE_TAB_MS = 30000;
  // this tab's name: sessionStorage survives a reload of the tab (a crash, a restart) but is not shared with other tabs
  const tab = (() => {
    try {
      let name = sessionStorage.getItem("studyapp:tab");
      if (!name) {
        name = `${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
        sessionStorage.setItem("studyapp:tab", name);
      }
      return name;
    } catch (error) {
      return null;
    }
  })();
  const state = { reader: null, assignment: null, running: false };
  const key = (reader, assignment) => `${PREFIX}${reader}:${assignment}`;
  const read = (name) => {
    try {
      const entry = JSON.parse(localStorage.getItem(name));
      return entry && typeof entry.text === "string" ? entry : null;
    } catch (error) {
      return null;
    }
  };
  const textarea = () => document.querySelector("#report-editor textarea");
  const say = (html) => {
    const box = document.getElementById("local-copy");
    if (box) box.innerHTML = html;
    return box;
  };

  document.addEventListener("input", (event) => {
    if (!event.target.closest || !event.target.closest("#report-editor")) return;
    if (state.reader === null || state.assignment === null || !state.running) return;
    try {
      localStorage.setItem(key(state.reader, state.assignment), JSON.stringify({
        text: event.target.value, seconds: window.studyTimer ? window.studyTimer.seconds() : 0, at: Date.now(), tab }));
    } catch (error) { /* storage full or turned off: the server's saves go on */ }
  }, { capture: true });

  // put `text` in the editor as if typed (Gradio's value follows it and autosave.js saves it), once the editor
  // shows `expected` (the server's text of the case; null: at once); resolves false if it never does
  const replace = (text, seconds, expected) => new Promise((resolve) => {
    let tries = 50;
    const attempt = () => {
      const area = textarea();
      if (!area || (expected !== null && area.value !== expected)) {
        if (--tries > 0) setTimeout(attempt, 100); else resolve(false);
        return;
      }
      area.value = text;
      area.dispatchEvent(new Event("input", { bubbles: true }));
      if (window.studyTimer) window.studyTimer.atLeast(seconds);
      resolve(true);
    };
    attempt();
  });

  const offer = (name, entry) => {
    const box = say('<div class="local-copy-offer">This browser kept another text of this report, typed at '
      + `${new Date(entry.at).toLocaleTimeString()}, that the server does not have. `
      + '<button id="local-copy-use">Use the kept text</button> '
      + '<button id="local-copy-discard">Discard it</button></div>');
    if (!box) return;
    box.querySelector("#local-copy-use").onclick = () => { say(""); replace(entry.text, entry.seconds, null); };
    box.querySelector("#local-copy-discard").onclick = () => {
      say("");
      if (read(name)?.at === entry.at) localStorage.removeItem(name);  // not text typed since
    };
  };

  window.studyLocal = {
    get assignment() { return state.assignment; },
    // a screen arrived: t is the reading tab's timer_start ({running, seconds, assignment, reader, ...}), text the
    // editor's text from the server
    opened(t, text) {
      say("");
      state.reader = t && t.reader != null ? t.reader : null;
      state.assignment = t && t.assignment != null ? t.assignment : null;
      state.running = Boolean(t && t.running);
      if (window.studySave) window.studySave.opened(state.running ? (text ?? "") : null);
      if (state.reader === null || state.assignment === null) return;
      const name = key(state.reader, state.assignment);
      const entry = read(name);
      if (!entry) return;
      if (!state.running || entry.text === text) {  // submitted (final), or the server has exactly this text
        localStorage.removeItem(name);
      } else if (entry.text.startsWith(text ?? "")
                 && (entry.tab === tab || !entry.tab || Date.now() - entry.at > LIVE_TAB_MS)) {
        replace(entry.text, entry.seconds, text ?? "").then((done) => {
          if (done) say("Restored text typed in this browser that had not reached the server; saving it now.");
          else offer(name, entry);
        });
      } else {
        offer(name, entry);
      }
    },
    // the server holds `text` for `assignment` now: its copy here is no longer needed
    stored(assignment, text) {
      if (state.reader === null || assignment === null || assignment === undefined) return;
      const name = key(state.reader, assignment);
      if (read(name)?.text === text) localStorage.removeItem(name);
    },
  };

  // signing out: save the open case's kept text first (a confirmed save drops it), then go on
  let passing = false;
  document.addEventListener("click", (event) => {
    const target = event.target.closest ? event.target.closest("a, button") : null;
    if (passing || !target || state.reader === null || state.assignment === null) return;
    if (!(target.getAttribute("href") || "").endsWith("/logout") && target.textContent.trim() !== "Sign out") return;
    const name = key(state.reader, state.assignment);
    if (!read(name) || !window.studySave) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    window.studySave.now();
    const began = Date.now();
    const poll = () => {
      const waited = Date.now() - began;
      if (read(name) && !(waited > 500 && window.studySave.settled()) && waited < SIGN_OUT_WAIT_MS) {
        setTimeout(poll, 200);
        return;
      }
      passing = true;
      target.click();
      passing = false;
    };
    setTimeout(poll, 200);
  }, { capture: true });
})();
