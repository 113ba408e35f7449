// The portal's only script (CSP: no inline script). Starts the design system's components and
// keeps each deadline's countdown ticking between the worklist's refreshes.
import { initAll } from "/nhsuk/nhsuk-frontend.min.js";

// The design system's components start only where the page says script runs.
document.body.classList.add("nhsuk-frontend-supported");
initAll();

function span(minutes) {
  const hours = Math.floor(minutes / 60);
  const rest = String(minutes % 60).padStart(2, "0");
  return hours ? `${hours} h ${rest} min` : `${minutes % 60} min`;
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
