/* The ops console: live audit stream, a referral's journey, evaluation figures.

   Identity lives in one place (Identity below): the user signs in with an ops client's
   credentials, the page asks the issuer (OAuth2 client credentials, audience "audit") for a
   token and keeps it for this tab only (sessionStorage). Every call sends it as a bearer
   token — which is also why the stream is read with fetch() and not EventSource: EventSource
   cannot send headers, and a token must never travel in a URL. */
"use strict";

const Identity = {
  tokenUrl: document.querySelector('meta[name="rx-token-url"]').content,
  load() {
    const saved = JSON.parse(sessionStorage.getItem("rx.session") || "null");
    return saved && saved.expiresAt > Date.now() ? saved : null;
  },
  async signIn(clientId, secret) {
    const body = new URLSearchParams({
      grant_type: "client_credentials",
      audience: "audit",
      client_id: clientId.trim(),
      client_secret: secret,
    });
    const response = await fetch(this.tokenUrl, { method: "POST", body });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error_description || answer.error || response.status);
    const claims = JSON.parse(atob(answer.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    const session = {
      token: answer.access_token,
      notifyToken: await this.notifyToken(clientId, secret),
      who: `${clientId.trim()} (${claims.org}, ${(claims.roles || []).join(", ")})`,
      expiresAt: Date.now() + (answer.expires_in - 30) * 1000,
    };
    sessionStorage.setItem("rx.session", JSON.stringify(session));
    return session;
  },
  /* A token for the notify API too (subscriptions' health), when the console shows it. */
  async notifyToken(clientId, secret) {
    if (!Subscriptions.url) return null;
    const body = new URLSearchParams({
      grant_type: "client_credentials",
      audience: "notify",
      client_id: clientId.trim(),
      client_secret: secret,
    });
    const response = await fetch(this.tokenUrl, { method: "POST", body });
    return response.ok ? (await response.json()).access_token : null;
  },
  /* Every request's credentials. */
  headers() {
    const session = this.load();
    return session ? { Authorization: `Bearer ${session.token}` } : {};
  },
};

async function problemText(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.title || ""}: ${body.detail || ""}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v) query.set(k, v);
  const url = query.toString() ? `${path}?${query}` : path;
  const response = await fetch(url, { headers: { Accept: "application/json", ...Identity.headers() } });
  if (!response.ok) throw new Error(await problemText(response));
  return response.json();
}

function shortType(type) {
  const parts = type.split(".");
  return parts.length >= 3 ? parts[parts.length - 2] : type;
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text ?? "";
  return td;
}

function referralLink(id) {
  const td = document.createElement("td");
  if (!id) return td;
  const a = document.createElement("a");
  a.className = "referral";
  a.textContent = id;
  a.addEventListener("click", () => showTimeline(id));
  td.append(a);
  return td;
}

function setStatus(id, text, state) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.className = `status ${state}`;
}

/* ---- live stream: server-sent events over fetch, resumed with Last-Event-ID ---------- */

const Stream = {
  lastId: null,
  controller: null,
  retryMs: 2000,
  filters: {},

  restart(filters) {
    if (this.controller) this.controller.abort();
    this.filters = filters;
    this.lastId = null; // new filters: live from now
    this.connect();
  },

  async connect() {
    const controller = new AbortController();
    this.controller = controller;
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(this.filters)) if (v) query.set(k, v);
    const headers = { Accept: "text/event-stream", ...Identity.headers() };
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    try {
      const response = await fetch(`/audit/stream?${query}`, { headers, signal: controller.signal });
      if (!response.ok) {
        const text = await problemText(response);
        setStatus("stream-status", text, "error");
        if (response.status === 401 || response.status === 403) return; // wait for a new identity
        throw new Error(text);
      }
      setStatus("stream-status", "live", "live");
      await this.read(response.body.pipeThrough(new TextDecoderStream()).getReader());
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    if (controller.signal.aborted) return;
    setStatus("stream-status", "reconnecting", "reconnecting");
    setTimeout(() => { if (this.controller === controller) this.connect(); }, this.retryMs);
  },

  async read(reader) {
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  },

  dispatch(block) {
    const event = { data: [] };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // comments are heartbeats
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(value);
      else if (field === "id") event.id = value;
      else if (field === "event") event.type = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (event.id !== undefined) this.lastId = event.id;
    if (event.type === "entry" && event.data.length) addEntry(JSON.parse(event.data.join("\n")));
  },
};

function addEntry(entry) {
  const body = document.querySelector("#stream tbody");
  const row = document.createElement("tr");
  row.className = "new";
  row.dataset.sequence = entry.sequence;
  if (entry.referral_id) row.dataset.referral = entry.referral_id;
  row.append(
    cell(entry.sequence),
    cell(new Date(entry.occurred_at).toLocaleString()),
    cell(shortType(entry.type)),
    referralLink(entry.referral_id),
    cell(entry.actor_org),
    cell(entry.topic),
  );
  row.title = entry.type;
  body.prepend(row);
  while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  Figures.soon();
}

/* ---- a referral's journey -------------------------------------------------------------- */

function duration(seconds) {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
}

async function showTimeline(referralId) {
  document.getElementById("timeline-id").value = referralId;
  const body = document.querySelector("#timeline tbody");
  const message = document.getElementById("timeline-message");
  body.replaceChildren();
  message.textContent = "Loading…";
  try {
    const steps = await api(`/audit/referrals/${encodeURIComponent(referralId)}/timeline`);
    for (const step of steps) {
      const row = document.createElement("tr");
      row.append(
        cell(duration(step.elapsed_seconds)),
        cell(step.accessed ? `${shortType(step.type)}: ${step.accessed}` : shortType(step.type)),
        cell(step.actor_org),
        cell(step.actor_practitioner),
        cell(step.status),
        cell(step.assigned_org),
      );
      row.title = `${step.type} at ${step.occurred_at}`;
      body.append(row);
    }
    message.textContent = `${steps.length} events for referral ${referralId}`;
  } catch (error) {
    message.textContent = error.message;
  }
}

/* ---- evaluation figures ------------------------------------------------------------------ */

const Figures = {
  timer: null,

  /* The form's selection, as the API's query parameters (empty ones left out by api()). */
  selection() {
    const form = new FormData(document.getElementById("figures-form"));
    const names = ["since", "until", "organisation", "locality", "cohort"];
    return Object.fromEntries(names.map((name) => [name, (form.get(name) || "").trim()]));
  },

  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 1500);
  },

  async refresh() {
    const form = document.getElementById("figures-form");
    if (!form.checkValidity()) {
      setStatus("figures-status", "the organisation must be an ODS code, e.g. RXA01", "error");
      return;
    }
    try {
      const f = await api("/audit/figures", this.selection());
      this.offer(f.known);
      this.describe(f);
      this.draw(f);
      setStatus("figures-status", `as of ${new Date(f.as_of).toLocaleTimeString()}`, "live");
    } catch (error) {
      setStatus("figures-status", error.message, "error");
    }
  },

  /* What there are figures for: the organisations to suggest, the localities to choose. */
  offer(known) {
    const list = document.getElementById("figures-organisations");
    list.replaceChildren(...known.organisations.map((code) => new Option(code, code)));
    const select = document.getElementById("figures-locality");
    const chosen = select.value;
    const names = new Set(known.localities);
    if (chosen) names.add(chosen);
    select.replaceChildren(new Option("any", ""), ...[...names].sort().map((n) => new Option(n, n)));
    select.value = chosen;
  },

  describe(f) {
    const parts = [];
    if (f.organisation) parts.push(`referrals ${f.organisation} sent or holds or held`);
    if (f.locality) parts.push(`in ${f.locality}`);
    if (f.cohort) parts.push(f.cohort === "none" ? "in no cohort" : `cohort ${f.cohort}`);
    const submitted = f.daily.reduce((sum, d) => sum + d.submitted, 0);
    document.getElementById("figures-selection").textContent =
      `${submitted} referral${submitted === 1 ? "" : "s"} submitted` +
      (parts.length ? `: ${parts.join(", ")}` : " (all)");
  },

  /* rows as a table's body: columns(row) gives each cell's [text, class]. */
  table(id, rows, columns) {
    const body = document.querySelector(`#${id} tbody`);
    const tr = (cells) => {
      const row = document.createElement("tr");
      row.append(...cells);
      return row;
    };
    if (!rows.length) {
      const empty = cell("No data yet.", "empty");
      empty.colSpan = document.querySelectorAll(`#${id} thead th`).length;
      body.replaceChildren(tr([empty]));
      return;
    }
    body.replaceChildren(...rows.map((row) => tr(columns(row).map(([text, name]) => cell(text, name)))));
  },

  draw(f) {
    const chart = (id) => document.querySelector(`#${id} .chart`);
    const rr = f.rapid_response;
    const share = rr.share === null ? "—" : `${Math.round(rr.share * 100)}%`;
    Charts.gauge(chart("chart-rapid"), rr.share,
      `${rr.answered_within} of ${rr.due} due (${share}) within 2 h; ${rr.pending} pending`);
    const minutes = (rows) => rows.map((r) => ({
      label: `${r.group} (${r.count})`, values: [r.median_seconds / 60, r.p90_seconds / 60] }));
    Charts.bars(chart("chart-accept-service"), minutes(f.time_to_accept.by_service_type), ["median", "p90"]);
    Charts.bars(chart("chart-accept-org"), minutes(f.time_to_accept.by_organisation), ["median", "p90"]);
    const counts = (rows, label) => rows.map((r) => ({ label: label(r), values: [r.count] }));
    Charts.bars(chart("chart-rejections"), counts(f.rejections_by_reason, (r) => r.reason), ["rejections"]);
    Charts.bars(chart("chart-rejections-org"),
      counts(f.rejections_by_organisation, (r) => `${r.organisation} · ${r.reason}`), ["rejections"]);
    const qt = f.question_turnaround;
    Charts.bars(chart("chart-questions"), qt.questions ? [
      { label: `all: ${qt.answered} of ${qt.questions} answered, ${qt.referrals_asked} referrals`,
        values: qt.answered ? [qt.median_seconds / 60, qt.p90_seconds / 60] : [0, 0] },
      ...minutes(qt.by_organisation),
    ] : [], ["median", "p90"]);
    const reasons = (rows) => counts(rows, (r) => `${r.organisation} · ${r.reason || "no code"}`);
    Charts.bars(chart("chart-failures"), reasons(f.failures_by_organisation), ["failed"]);
    Charts.bars(chart("chart-cancellations"), reasons(f.cancellations_by_organisation), ["cancelled"]);
    const percent = (share) => Math.round(share * 1000) / 10;
    Charts.bars(chart("chart-outcome-mix"), f.outcome_mix.map((r) => ({
      label: `${r.state}${r.outcome ? " · " + r.outcome : ""} (${r.count})`,
      values: [percent(r.share)] })), ["% of ended"]);
    this.table("outcome-service", f.outcome_mix_by_service_type, (r) => [
      [r.service_type], [r.state], [r.outcome || "no code"], [String(r.count), "num"],
      [`${percent(r.share)}%`, "num"],
    ]);
    Charts.bars(chart("chart-cohort"), counts(f.outcomes_by_cohort, (r) => `${r.cohort} · ${r.outcome}`), ["referrals"]);
    Charts.bars(chart("chart-locality"), counts(f.outcomes_by_locality, (r) => `${r.locality} · ${r.outcome}`), ["referrals"]);
    Charts.bars(chart("chart-flows"), counts(f.flows, (r) => `${r.from} → ${r.to}`), ["routings"]);
    Charts.lines(chart("chart-daily"),
      f.daily.map((d) => ({ label: d.day, values: [d.submitted, d.accepted, d.rejected, d.completed] })),
      ["submitted", "accepted", "rejected", "completed"]);
  },
};

/* ---- subscriptions' delivery health (the notify API, ops see every organisation's) ----- */

const Subscriptions = {
  url: document.querySelector('meta[name="rx-notify-url"]').content,

  async refresh() {
    const session = Identity.load();
    if (!this.url || !session || !session.notifyToken) return;
    const organisation = new FormData(document.getElementById("subscriptions-form")).get("organisation");
    const query = new URLSearchParams({ limit: "500" });
    if (organisation) query.set("organisation", organisation.trim().toUpperCase());
    try {
      const response = await fetch(`${this.url}/subscriptions?${query}`, {
        headers: { Accept: "application/json", Authorization: `Bearer ${session.notifyToken}` },
      });
      if (!response.ok) throw new Error(await problemText(response));
      this.render((await response.json()).items);
      setStatus("subscriptions-status", `updated ${new Date().toLocaleTimeString()}`, "live");
    } catch (error) {
      setStatus("subscriptions-status", error.message, "error");
    }
  },

  render(items) {
    const when = (t) => (t ? new Date(t).toLocaleString() : "");
    const rows = items.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.subscription = s.id;
      tr.className = s.health.status === "error" ? "failing" : "";
      const endpoint = new URL(s.endpoint);
      tr.append(
        cell(s.organisation), cell(s.topic), cell(s.channel), cell(endpoint.origin),
        cell(s.health.status, `state ${s.health.status}`), cell(s.health.events_since_start),
        cell(s.health.backlog, s.health.backlog ? "backlog" : ""),
        cell(when(s.health.last_success_at)), cell(when(s.health.failing_since)),
        cell(s.health.last_error),
      );
      return tr;
    });
    document.querySelector("#subscriptions tbody").replaceChildren(...rows);
  },
};

/* ---- wiring -------------------------------------------------------------------------------- */

function start() {
  const showIdentity = (text, state) => {
    const status = document.getElementById("identity-status");
    status.textContent = text;
    status.className = `status ${state}`;
  };
  const session = Identity.load();
  if (session) showIdentity(`signed in as ${session.who}`, "live");
  const filtersOf = () => Object.fromEntries(new FormData(document.getElementById("stream-filters")));

  document.getElementById("identity").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    try {
      const signed = await Identity.signIn(form.get("client_id"), form.get("client_secret"));
      document.getElementById("identity-secret").value = "";
      showIdentity(`signed in as ${signed.who}`, "live");
    } catch (error) {
      showIdentity(`sign-in failed: ${error.message}`, "error");
      return;
    }
    Stream.restart(filtersOf());
    Figures.refresh();
    Subscriptions.refresh();
  });
  document.getElementById("subscriptions-form").addEventListener("submit", (e) => {
    e.preventDefault();
    Subscriptions.refresh();
  });
  if (Subscriptions.url) {
    document.getElementById("subscriptions-section").hidden = false;
    Subscriptions.refresh();
    setInterval(() => Subscriptions.refresh(), 15000);
  }
  document.getElementById("stream-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    document.querySelector("#stream tbody").replaceChildren();
    Stream.restart(filtersOf());
  });
  document.getElementById("timeline-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = new FormData(e.target).get("referral_id").trim();
    if (id) showTimeline(id);
  });
  document.getElementById("figures-form").addEventListener("submit", (e) => {
    e.preventDefault();
    Figures.refresh();
  });
  for (const id of ["figures-locality", "figures-cohort"]) {
    document.getElementById(id).addEventListener("change", () => Figures.refresh());
  }

  if (!Identity.load()) {
    setStatus("stream-status", "sign in above", "error");
    return;
  }
  Stream.restart(filtersOf());
  Figures.refresh();
  setInterval(() => Figures.refresh(), 30000);
}

document.addEventListener("DOMContentLoaded", start);
