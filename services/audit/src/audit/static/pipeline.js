/* Pipeline health: consumer lag, outbox backlog, dead letters and SLA clocks, from the same
   /metrics figures Prometheus scrapes (GET /audit/pipeline), refreshed every 5 seconds while
   signed in. Uses api(), cell() and setStatus() from ops.js. */
"use strict";

const Pipeline = {
  async refresh() {
    if (!Identity.load()) return;
    let health;
    try {
      health = await api("/audit/pipeline");
    } catch (error) {
      setStatus("pipeline-status", error.message, "error");
      return;
    }
    const rows = (id, items, columns) => {
      const body = document.querySelector(`#${id} tbody`);
      body.replaceChildren(
        ...items.map((item) => {
          const tr = document.createElement("tr");
          tr.append(...columns.map(([text, className]) => cell(text(item), className)));
          return tr;
        }),
      );
    };
    const number = (n) => String(Math.round(n));
    rows("pipeline-lag", health.lag, [
      [(r) => r.group], [(r) => r.topic], [(r) => String(r.partition), "num"],
      [(r) => number(r.lag), "num"],
    ]);
    rows("pipeline-outbox", health.outbox, [
      [(r) => r.relay], [(r) => number(r.backlog), "num"],
      [(r) => `${r.oldest_age_seconds.toFixed(1)} s`, "num"],
    ]);
    rows("pipeline-dead-letters", health.dead_letters, [
      [(r) => r.group], [(r) => r.topic], [(r) => number(r.count), "num alert"],
    ]);
    rows("pipeline-sla", [health.sla], [
      [(s) => number(s.pending || 0), "num"], [(s) => number(s.warned || 0), "num"],
      [(s) => number(s.breached || 0), "num"],
    ]);
    const down = health.targets.filter((t) => !t.up).map((t) => t.target);
    document.getElementById("pipeline-down").textContent = down.length
      ? `not answering: ${down.join(", ")}` : "";
    const parked = health.dead_letters.reduce((sum, d) => sum + d.count, 0);
    setStatus(
      "pipeline-status",
      `${health.targets.length - down.length}/${health.targets.length} processes` +
        (parked ? `, ${parked} dead letter(s)` : ""),
      down.length || parked ? "error" : "live",
    );
  },
};

document.addEventListener("DOMContentLoaded", () => {
  Pipeline.refresh();
  setInterval(() => Pipeline.refresh(), 5000);
});
