// The blind review: two versions' outputs for one prompt, shown as A and B without their names;
// a vote reveals which was which and updates the win rates. Texts only ever go in as textContent.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { el, call } = gpt2bot;
  const VOTES = { "vote-a": "a", "vote-tie": "tie", "vote-b": "b" };
  const SOURCES = {
    fixed: "One of the fixed evaluation prompts.",
    recent: "A member's recent prompt (one that passed moderation and nobody reported).",
  };
  let current = null; // the pair on screen

  function say(text, isError) {
    $("review-msg").textContent = text || "";
    $("review-msg").classList.toggle("error", Boolean(isError));
  }

  function voting(enabled) {
    for (const id of Object.keys(VOTES)) $(id).disabled = !enabled;
  }

  const percent = (share) => `${Math.round(share * 100)}%`;

  function renderRates(rates) {
    const body = $("rates").tBodies[0];
    body.replaceChildren();
    for (const r of rates) {
      const tr = el("tr");
      const cells = [`${r.first} vs ${r.second}`, r.judged, `${r.first_wins} – ${r.second_wins}`,
        r.ties, `${percent(r.first_rate)} – ${percent(r.second_rate)}`];
      cells.forEach((cell, i) => tr.append(el("td", cell, i ? "num" : "")));
      body.append(tr);
    }
    if (!rates.length) {
      const tr = el("tr");
      tr.append(el("td", "No verdicts yet."));
      body.append(tr);
    }
  }

  function show(item) {
    current = item;
    $("source").textContent = SOURCES[item.source] || "";
    $("prompt").textContent = item.prompt;
    $("output-a").textContent = item.output_a;
    $("output-b").textContent = item.output_b;
    for (const side of ["a", "b"]) $(`reveal-${side}`).hidden = true;
    $("next").hidden = true;
    voting(true);
  }

  async function nextPair() {
    voting(false);
    $("next").hidden = true;
    say("Both versions are writing…");
    const body = {};
    if ($("pair-a").value) body.version_a = $("pair-a").value;
    if ($("pair-b").value) body.version_b = $("pair-b").value;
    try {
      const { item } = await call("POST", "/admin/api/review/next", body);
      show(item);
      say("");
    } catch (error) {
      current = null;
      for (const id of ["prompt", "output-a", "output-b", "source"]) $(id).textContent = "";
      say(error.message, true);
    }
  }

  function reveal(revealed) {
    for (const side of ["a", "b"]) {
      const version = revealed[`version_${side}`];
      const box = $(`reveal-${side}`);
      box.textContent = `${side.toUpperCase()} was ${version}${revealed.winner === version ? " — preferred" : ""}`;
      box.hidden = false;
    }
  }

  async function vote(choice) {
    if (!current) return;
    voting(false);
    try {
      const answer = await call("POST", "/admin/api/review/vote", { id: current.id, choice });
      reveal(answer.revealed);
      renderRates(answer.rates);
      say(answer.message);
      $("next").hidden = false;
      $("next").focus();
    } catch (error) {
      say(error.message, true);
      voting(true);
    }
  }

  async function loadVersions() {
    const { models } = await call("GET", "/admin/api/models");
    for (const id of ["pair-a", "pair-b"]) {
      for (const m of models) {
        const option = el("option", m.status === "active" ? `${m.name} (serving)` : m.name);
        option.value = m.name;
        $(id).append(option);
      }
    }
  }

  async function start() {
    const session = await gpt2bot.loadSession();
    $("need-login").hidden = session.is_admin;
    $("review").hidden = !session.is_admin;
    if (!session.is_admin) return;
    for (const [id, choice] of Object.entries(VOTES)) $(id).addEventListener("click", () => vote(choice));
    $("next").addEventListener("click", nextPair);
    $("pair-form").addEventListener("submit", (event) => { event.preventDefault(); nextPair(); });
    await Promise.all([
      loadVersions().catch((error) => console.error(error)),
      call("GET", "/admin/api/review/rates").then(({ rates }) => renderRates(rates)),
    ]);
    await nextPair();
  }

  start();
})();
