// The /audit/recheck page's progress bar: polls GET /api/v1/rechecks/{id} (the page's
// cookie with its CSRF header) every 2 s while the run is running; reloads the page
// when the run stops, so the change report and the buttons are the server's.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("recheck-data").textContent);
  const bar = document.getElementById("recheck-progress");
  const text = document.getElementById("progress-text");
  const eta = document.getElementById("progress-eta");
  const rate = document.getElementById("progress-rate");
  const section = document.getElementById("recheck-run");
  function clock(seconds) {
    const s = Math.round(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  async function poll() {
    try {
      const r = await fetch("/api/v1/rechecks/" + data.run, {
        credentials: "same-origin",
        headers: { "X-CSRF-Token": data.csrf },
      });
      if (r.ok) {
        const run = await r.json();
        bar.max = run.total;
        bar.value = run.done;
        section.dataset.done = run.done;
        section.dataset.state = run.state;
        text.textContent = data.done_text.replace("{done}", run.done).replace("{total}", run.total);
        eta.textContent = run.eta_seconds === null ? "" : " · " + data.eta_text.replace("{t}", clock(run.eta_seconds));
        rate.textContent = run.photos_per_s ? " · " + data.rate_text.replace("{r}", run.photos_per_s) : "";
        if (run.state !== "running") {
          window.location.reload();
          return;
        }
      }
    } catch (e) {
      // the server restarting: try again at the next tick
    }
    window.setTimeout(poll, 2000);
  }
  window.setTimeout(poll, 1000);
})();
