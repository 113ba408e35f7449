// The portal's only script (CSP: no inline script). Starts the design system's components and
// keeps each deadline's countdown ticking between the worklist's refreshes.
import { initAll } from "/nhsuk/nhsuk-frontend.min.js";

// The design system's components start only where the page says script runs.
document.body.classList.add("nhsuk-frontend-supported");
initAll();

// As views.countdown says it on the server.
function span(total) {
  const days = Math.floor(total / 1440);
  const hours = Math.floor((total % 1440) / 60);
  const minutes = total % 60;
  if (days) return `${days} day${days > 1 ? "s" : ""} ${hours} h`;
  return hours ? `${hours} h ${String(minutes).padStart(2, "0")} min` : `${minutes} min`;
}

function tick() {
  const now = Date.now();
  for (const element of document.querySelectorAll("[data-due]")) {
    const seconds = Math.trunc((Date.parse(element.dataset.due) - now) / 1000);
    const minutes = Math.floor(Math.abs(seconds) / 60);
    element.textContent = seconds >= 0 ? `Due in ${span(minutes)}` : `Overdue by ${span(minutes)}`;
    element.classList.toggle("rx-due--overdue", seconds < 0);
  }
}

tick();
setInterval(tick, 15000);
document.body.addEventListener("htmx:afterSettle", tick);
