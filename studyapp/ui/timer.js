// Active-time timer of the reading screen.
// Counts seconds while the tab is visible and the reader was active within the study's idle limit;
// the server stores the running total at each autosave and clamps it to wall-clock time.
(() => {
  const state = { running: false, seconds: 0, idleMs: 60000, lastActivity: Date.now(), lastTick: Date.now() };
  const format = (s) => {
    const total = Math.floor(s);
    const m = String(Math.floor(total / 60)).padStart(2, "0");
    const sec = String(total % 60).padStart(2, "0");
    return `${m}:${sec}`;
  };
  const paused = () => document.visibilityState !== "visible" || Date.now() - state.lastActivity > state.idleMs;
  const show = () => {
    const el = document.getElementById("case-timer");
    if (el) {
      el.textContent = format(state.seconds);
      el.dataset.seconds = state.seconds.toFixed(1);
      el.dataset.paused = state.running && paused() ? "true" : "false";
    }
  };
  setInterval(() => {
    const now = Date.now();
    if (state.running && !paused()) state.seconds += (now - state.lastTick) / 1000;
    state.lastTick = now;
    show();
  }, 250);
  for (const kind of ["keydown", "mousemove", "mousedown", "wheel", "touchstart", "input"]) {
    document.addEventListener(kind, () => { state.lastActivity = Date.now(); }, { passive: true, capture: true });
  }
  document.addEventListener("visibilitychange", () => { state.lastTick = Date.now(); });
  window.studyTimer = {
    start(seconds, idleSeconds) {
      state.seconds = Number(seconds) || 0;
      state.idleMs = (Number(idleSeconds) || 60) * 1000;
      state.lastActivity = Date.now();
      state.lastTick = Date.now();
      state.running = true;
      show();
    },
    stop(seconds) {
      state.running = false;
      if (seconds !== undefined) state.seconds = Number(seconds) || 0;
      show();
    },
    seconds() { return state.seconds; },
    // a running timer counts on from at least `seconds` (active time kept in the browser, local_copy.js)
    atLeast(seconds) {
      if (state.running) state.seconds = Math.max(state.seconds, Number(seconds) || 0);
      show();
    },
  };
})();
