// The admin dashboard: login, stats, A/B experiment, model versions, processes, training,
// curation, generations, audit.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { el, call, when } = gpt2bot;
  const TRAINING_POLL_MS = 2000; // live progress while a run is going
  const AB_POLL_MS = 5000; // a running experiment's numbers move with every rating
  const FLEET_POLL_MS = 5000; // processes follow a change within FOLLOW_INTERVAL_S
  let oldest = null;
  let pollTimer = null;
  let abTimer = null;
  let fleetTimer = null;

  function say(id, text, isError) {
    $(id).textContent = text || "";
    $(id).classList.toggle("error", Boolean(isError));
  }

  function row(cells) {
    const tr = el("tr");
    for (const cell of cells) {
      const td = cell instanceof Node ? el("td") : el("td", cell);
      if (cell instanceof Node) td.append(cell);
      tr.append(td);
    }
    return tr;
  }

  function button(text, onClick) {
    const b = el("button", text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  async function act(msgId, url, body, after) {
    try {
      const answer = await call("POST", url, body);
      say(msgId, answer.message);
      if (after) await after();
    } catch (error) {
      say(msgId, error.message, true);
    }
    loadAudit().catch(() => {}); // every action, allowed or refused, is in the audit log
  }

  async function loadStats() {
    const { stats } = await call("GET", "/admin/api/stats");
    const body = $("stats").tBodies[0];
    body.replaceChildren();
    for (const s of stats) {
      const tr = row([s.model_version, s.generations, s.ratings, s.mean_score.toFixed(2),
        s.ratings ? `${Math.round(s.positive_share * 100)}%` : "–", s.raters]);
      for (const td of [...tr.children].slice(1)) td.className = "num";
      body.append(tr);
    }
    if (!stats.length) body.append(row(["No generations yet."]));
    $("stats-chart").replaceChildren(stats.some((s) => s.ratings)
      ? charts.ratings(stats, "Ratings per model version") : el("p", "No ratings yet.", "dim"));
  }

  const pct = (share) => `${Math.round(share * 100)}%`;

  function renderExperiment(x) {
    const body = $("ab-arms").tBodies[0];
    body.replaceChildren();
    if (!x) {
      $("ab-summary").textContent = "No experiment has run yet: choose a candidate below to start one.";
      $("ab-chart").replaceChildren();
      $("ab-decision").textContent = $("ab-review").textContent = "";
      return false;
    }
    const ended = x.ended_at ? `, ended ${when(x.ended_at)} by ${x.ended_by}` : "";
    $("ab-summary").textContent = `Experiment #${x.id}: ${x.status} (started ${when(x.started_at)} by ${x.started_by}${ended})`;
    const arms = [x.arms.control, x.arms.candidate];
    for (const a of arms) {
      const [low, high] = a.interval;
      const tr = row([a.arm, a.version, pct(a.share), a.generations, a.ratings,
        a.up_share === null ? "–" : pct(a.up_share), `${pct(low)}–${pct(high)}`]);
      for (const td of [...tr.children].slice(2)) td.className = "num";
      body.append(tr);
    }
    $("ab-chart").replaceChildren(charts.ab(arms, `Experiment #${x.id}: both arms`));
    const said = x.status === "running" ? `decision so far: ${x.decision}` : `ended: ${x.status}`;
    $("ab-decision").textContent = `P(candidate better) = ${x.probability.toFixed(2)} · ${said} (${x.reason})`;
    const r = x.review;
    $("ab-review").textContent = r
      ? `Blind review of this pair: ${r.judged} judged · ${r.candidate} won ${r.candidate_wins}, ${r.control} won ${r.control_wins}, ${r.ties} tied (${r.candidate} ${pct(r.candidate_rate)}, a tie counting half).`
      : "Blind review of this pair: no verdicts yet (the Blind review page shows the pair to judge).";
    return x.status === "running";
  }

  async function loadAB() {
    const data = await call("GET", "/admin/api/ab");
    const running = renderExperiment(data.experiment);
    const select = $("ab-version");
    const chosen = select.value;
    select.replaceChildren(...data.candidates.map((name) => el("option", name)));
    if (data.candidates.includes(chosen)) select.value = chosen;
    $("ab-form").querySelector("button[type=submit]").disabled = running || !data.candidates.length;
    $("ab-stop").disabled = !running;
    clearTimeout(abTimer);
    if (running) abTimer = setTimeout(() => loadAB().catch(() => {}), AB_POLL_MS);
  }

  async function loadModels() {
    const data = await call("GET", "/admin/api/models");
    const body = $("models").tBodies[0];
    body.replaceChildren();
    for (const m of data.models) {
      const loss = typeof m.metrics.eval_loss === "number" ? m.metrics.eval_loss.toFixed(3) : "–";
      const use = m.status === "active" ? el("span", "serving", "dim")
        : button(`Use ${m.name}`, () => act("models-msg", "/admin/api/models/use",
          { version: m.name, force: $("force").checked }, refresh));
      // an adapter names the full version it applies to; a full version its model's origin
      const base = m.base_version ? `adapter of ${m.base_version}` : `full model (${m.base_model})`;
      const tr = row([m.name, m.status, base, loss, use]);
      tr.children[3].className = "num";
      body.append(tr);
    }
  }

  async function loadLines() {
    const { lines } = await call("GET", "/admin/api/lines");
    const body = $("lines").tBodies[0];
    body.replaceChildren();
    for (const l of lines) {
      const versions = l.versions.map((v) => `${v.name} (${v.status}, adapter of ${v.base_version || "–"})`).join(", ");
      body.append(row([l.server, l.enabled ? "yes" : "no", l.served || "the shared version", l.shares ? "yes" : "no", versions || "–"]));
    }
    if (!lines.length) body.append(row(["No server has a model line of its own.", "", "", "", ""]));
  }

  async function loadFleet() {
    const fleet = await call("GET", "/admin/api/fleet");
    $("fleet-summary").textContent =
      `The database: ${fleet.active || "no active version yet"}` +
      (fleet.candidate ? `, A/B candidate ${fleet.candidate}` : "") + `. ${fleet.summary}`;
    const body = $("fleet").tBodies[0];
    body.replaceChildren();
    for (const p of fleet.processes) {
      const serves = p.served_version + (p.candidate_version ? ` (+A/B ${p.candidate_version})` : "");
      const state = p.serves_database_choice ? "ok" : p.lagging ? "lagging" : "following";
      const shards = p.shards ? ` · shards ${p.shards}` : "";
      const tr = row([`${p.host}:${p.pid}`, p.platform + shards, serves, when(p.last_seen),
        p.problem ? `${state}: ${p.problem}` : state]);
      if (p.lagging) tr.classList.add("error");
      body.append(tr);
    }
    if (!fleet.processes.length) body.append(row(["No gpt2bot run process is live."]));
    clearTimeout(fleetTimer);
    if (!$("dashboard").hidden) fleetTimer = setTimeout(() => loadFleet().catch(() => {}), FLEET_POLL_MS);
  }

  function renderRun(info, runs) {
    const box = $("training-current");
    box.replaceChildren();
    const latest = runs[0];
    const run = info || latest;
    if (!run) { box.append(el("p", "No training runs yet.", "dim")); return false; }
    const active = ["queued", "running"].includes(run.status);
    const eta = run.eta_s ? ` · about ${Math.round(run.eta_s)} s left` : "";
    box.append(el("p", `Run #${run.id}: ${run.status}${eta}${run.error ? " — " + run.error : ""}`));
    const bar = el("progress", null, "progress");
    bar.max = 1;
    bar.value = run.progress || 0;
    bar.setAttribute("aria-label", `Training progress ${Math.round((run.progress || 0) * 100)}%`);
    box.append(bar);
    const full = runs.find((r) => r.id === run.id);
    const points = charts.lossPoints(full ? full.loss_log : []);
    $("loss-chart").replaceChildren(points.length ? charts.loss(points, `Training loss of run #${run.id}`) : el("p", "No loss values logged yet.", "dim"));
    return active;
  }

  async function loadTraining() {
    const data = await call("GET", "/admin/api/training");
    const active = renderRun(data.current, data.runs);
    const body = $("runs").tBodies[0];
    body.replaceChildren();
    for (const r of data.runs) body.append(row([`#${r.id}`, r.status, r.trigger, r.dataset_size, r.model_version || "–", when(r.created_at)]));
    clearTimeout(pollTimer);
    if (active) pollTimer = setTimeout(() => loadTraining().catch(() => {}), TRAINING_POLL_MS);
  }

  async function loadCuration() {
    const data = await call("GET", "/admin/api/curation");
    const body = $("curation").tBodies[0];
    body.replaceChildren();
    for (const item of data.items) {
      const source = item.source === "rating" ? `rated output #${item.generation_id}` : item.source;
      body.append(row([item.id, item.text, source, item.added_by,
        button("Remove", () => act("curation-msg", "/admin/api/curation/remove", { id: item.id }, loadCuration))]));
      body.lastChild.children[1].className = "text";
    }
    if (!data.items.length) body.append(row(["", "No curated samples yet."]));
  }

  function filterQuery() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData($("filters"))) if (v) params.set(k, v);
    return params;
  }

  async function loadGenerations(append) {
    const params = filterQuery();
    for (const fmt of ["jsonl", "csv"]) {
      const link = new URLSearchParams(params);
      link.set("format", fmt);
      $(`export-${fmt}`).href = `/admin/api/export?${link}`;
    }
    if (append && oldest) params.set("before_id", oldest);
    try {
      const data = await call("GET", `/admin/api/generations?${params}`);
      const select = $("f-version");
      const chosen = select.value;
      select.replaceChildren(el("option", "any"));
      select.firstChild.value = "";
      for (const v of data.model_versions) select.append(el("option", v));
      select.value = chosen;
      const body = $("gens").tBodies[0];
      if (!append) body.replaceChildren();
      for (const g of data.generations) {
        const text = el("span");
        text.append(el("span", g.prompt, "dim"), el("strong", g.output));
        if (g.flagged) text.append(el("em", ` — withheld: ${g.flagged}`, "dim"));
        const tr = row([g.id, when(g.created_at), g.model_version, g.platform, text, g.ratings_up, g.ratings_down]);
        tr.children[4].className = "text";
        tr.children[5].className = tr.children[6].className = "num";
        body.append(tr);
      }
      if (!append && !data.generations.length) body.append(row(["", "", "", "", "Nothing matches these filters."]));
      oldest = data.generations.length ? data.generations[data.generations.length - 1].id : oldest;
      $("more").hidden = !data.more;
      say("gens-msg", "");
    } catch (error) {
      say("gens-msg", error.message, true);
    }
  }

  function input(value, label, type) {
    const field = el("input");
    field.type = type || "text";
    if (type === "checkbox") field.checked = Boolean(value); else field.value = value ?? "";
    field.setAttribute("aria-label", label);
    return field;
  }

  async function loadServers() {
    const { servers } = await call("GET", "/admin/api/servers");
    const body = $("servers").tBodies[0];
    body.replaceChildren();
    if (!servers.length) body.append(row(["No server has used the bot yet.", "", "", "", "", "", "", ""]));
    for (const s of servers) {
      const name = `${s.platform} ${s.server_id}`;
      const fields = {
        allowed_channels: input(s.allowed_channels.join(" "), `Channels of ${name}`),
        cooldown_s: input(s.cooldown_s, `Cooldown of ${name}`, "number"),
        max_new_tokens_cap: input(s.max_new_tokens_cap, `Max new tokens of ${name}`, "number"),
        samples_cap: input(s.samples_cap, `Max samples of ${name}`, "number"),
        ratings_train: input(s.ratings_train, `Ratings of ${name} train`, "checkbox"),
        // a text input drops new lines: shown (and sent back) as \n, as typed in a chat
        template: input((s.templates[""] || "").replace(/\n/g, "\\n"), `Prompt template of ${name}`),
      };
      // channel templates are set in the chat (`/admin server template`); shown on hover
      const perChannel = Object.entries(s.templates).filter(([place]) => place);
      fields.template.title = perChannel.map(([place, text]) => `#${place}: ${text}`).join("\n");
      fields.template.placeholder = "{prompt} once, e.g. Q: {prompt}\\nA:";
      const save = button("Save", () => act("servers-msg", "/admin/api/servers/update", {
        platform: s.platform, server_id: s.server_id,
        allowed_channels: fields.allowed_channels.value,
        cooldown_s: fields.cooldown_s.value, max_new_tokens_cap: fields.max_new_tokens_cap.value,
        samples_cap: fields.samples_cap.value, ratings_train: fields.ratings_train.checked,
        template: fields.template.value,
      }, loadServers));
      body.append(row([name, ...Object.values(fields), save]));
    }
  }

  async function loadAudit() {
    const { entries } = await call("GET", "/admin/api/audit");
    const body = $("audit").tBodies[0];
    body.replaceChildren();
    for (const e of entries) {
      const where = e.server_id ? ` · server ${e.server_id}` : "";
      body.append(row([when(e.created_at), `${e.actor} (${e.platform}${where})`,
        e.scope ? `${e.action} [${e.scope}]` : e.action, e.allowed ? "yes" : "refused"]));
    }
  }

  async function refresh() {
    await Promise.all([loadStats(), loadAB(), loadModels(), loadLines(), loadFleet(), loadTraining(), loadCuration(), loadGenerations(false), loadServers(), loadAudit()]
      .map((p) => p.catch((error) => console.error(error))));
  }

  function wire() {
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("POST", "/admin/api/login", { token: $("token").value });
        $("token").value = "";
        await show(true);
      } catch (error) {
        say("login-msg", error.message, true);
        $("token").focus();
      }
    });
    $("logout").addEventListener("click", async () => { await call("POST", "/admin/api/logout", {}); show(false); });
    $("rollback").addEventListener("click", () => act("models-msg", "/admin/api/models/rollback", {}, refresh));
    $("retrain").addEventListener("click", () => act("training-msg", "/admin/api/training/start", {}, loadTraining));
    $("cancel").addEventListener("click", () => act("training-msg", "/admin/api/training/cancel", {}, loadTraining));
    $("schedule-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("training-msg", "/admin/api/training/schedule", { cron: $("cron").value }, loadAudit);
    });
    $("curate-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("curation-msg", "/admin/api/curation/add", { text: $("curate-text").value }, async () => {
        $("curate-text").value = "";
        await loadCuration();
      });
    });
    $("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const file = $("curate-file").files[0];
      if (!file) { say("curation-msg", "Choose a .txt or .jsonl file to upload.", true); return; }
      const form = new FormData();
      form.append("file", file);
      act("curation-msg", "/admin/api/curation/upload", form, loadCuration);
    });
    $("ab-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("ab-msg", "/admin/api/ab/start", { version: $("ab-version").value, share: $("ab-share").value }, loadAB);
    });
    $("ab-stop").addEventListener("click", () => act("ab-msg", "/admin/api/ab/stop", {}, loadAB));
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); oldest = null; loadGenerations(false); });
    $("more").addEventListener("click", () => loadGenerations(true));
  }

  async function show(isAdmin) {
    $("login").hidden = isAdmin;
    $("dashboard").hidden = !isAdmin;
    $("logout").hidden = !isAdmin;
    if (isAdmin) await refresh(); else $("token").focus();
  }

  async function start() {
    wire();
    const session = await gpt2bot.loadSession();
    await show(session.is_admin);
  }

  start();
})();
