// The playground: generate (streamed), rate, regenerate, continue, and this browser's history.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { el } = gpt2bot;
  const FLOAT_STEP = { temperature: 0.05, top_p: 0.01, repetition_penalty: 0.05 };
  const CONTINUE_PROMPT_CHARS = 160; // a continued card shows only the end of its prompt
  let busy = false;
  let controller = null;

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text || "";
    status.classList.toggle("error", Boolean(isError));
  }

  function buildParams(session) {
    const box = $("params");
    for (const [name, [low, high]] of Object.entries(session.limits)) {
      const row = el("div", null, "param");
      const id = `param-${name}`;
      const label = el("label", name.replace(/_/g, " "));
      label.htmlFor = id;
      const input = el("input");
      input.id = id;
      input.name = name;
      input.type = "number";
      input.min = low;
      input.max = high;
      const isFloat = name in FLOAT_STEP;
      input.step = isFloat ? FLOAT_STEP[name] : 1;
      if (name === "seed") {
        input.placeholder = "random";
        input.removeAttribute("max"); // bigger than JavaScript numbers; the server checks it
      } else {
        input.value = session.defaults[name];
      }
      const help = el("small", session.help[name]);
      help.id = `${id}-help`;
      input.setAttribute("aria-describedby", help.id);
      row.append(label, input);
      if (name !== "seed") {
        const range = el("input");
        range.type = "range";
        range.min = low;
        range.max = Math.min(high, name === "top_k" ? 200 : high);
        range.step = input.step;
        range.value = input.value;
        range.tabIndex = -1; // the number box is the keyboard control; the slider is for pointers
        range.setAttribute("aria-hidden", "true");
        range.addEventListener("input", () => { input.value = range.value; });
        input.addEventListener("input", () => { range.value = input.value; });
        row.append(range);
      }
      row.append(help);
      box.append(row);
    }
  }

  function readParams() {
    const params = {};
    for (const input of $("params").querySelectorAll("input[type=number]")) {
      if (input.value.trim() !== "") params[input.name] = input.value.trim();
    }
    return params;
  }

  function renderCard(card, g) {
    card.dataset.id = g.id;
    const prompt = card.querySelector(".prompt");
    let shown = g.prompt;
    if (g.kind === "continue" && shown.length > CONTINUE_PROMPT_CHARS) {
      shown = "…" + shown.slice(-CONTINUE_PROMPT_CHARS);
    }
    prompt.textContent = shown;
    card.querySelector(".output").textContent = g.output;
    const kind = { new: "", regenerate: "🔁 regenerated · ", continue: "⏩ continued · " }[g.kind] || "";
    const truncated = g.prompt_truncated ? " · prompt cut to fit the context" : "";
    card.querySelector(".meta").textContent =
      `${kind}#${g.id} · model ${g.model_version} · seed ${g.seed}${truncated}`;
    for (const button of card.querySelectorAll(".rate")) {
      const mine = g.my_rating === button.dataset.emoji;
      button.setAttribute("aria-pressed", String(mine));
      const count = button.classList.contains("up") ? g.ratings_up : g.ratings_down;
      button.querySelector(".count").textContent = count ? String(count) : "";
    }
    card.classList.remove("pending");
    for (const button of card.querySelectorAll("button")) button.disabled = false;
  }

  function newCard(prompt) {
    const card = $("card-template").content.firstElementChild.cloneNode(true);
    card.classList.add("pending");
    card.querySelector(".prompt").textContent = prompt || "";
    for (const button of card.querySelectorAll("button")) button.disabled = true;
    card.querySelector(".up").addEventListener("click", () => rate(card, "👍"));
    card.querySelector(".down").addEventListener("click", () => rate(card, "👎"));
    card.querySelector(".regen").addEventListener("click", () =>
      run(`/api/generations/${card.dataset.id}/regenerate`, {}, card.querySelector(".prompt").textContent, card));
    card.querySelector(".cont").addEventListener("click", () =>
      run(`/api/generations/${card.dataset.id}/continue`, {}, "", null));
    card.querySelector(".report").addEventListener("click", async () => {
      try {
        const { message } = await gpt2bot.call("POST", `/api/generations/${card.dataset.id}/report`, {});
        setStatus(message);
      } catch (error) {
        setStatus(error.message, true);
      }
    });
    return card;
  }

  function place(card, after) {
    const thread = $("thread");
    const empty = thread.querySelector(".empty");
    if (empty) empty.remove();
    if (after) after.after(card); else thread.append(card);
  }

  async function run(url, body, prompt, after) {
    if (busy) { setStatus("One generation at a time: wait for this one or press Stop."); return; }
    busy = true;
    controller = new AbortController();
    $("generate").disabled = true;
    $("stop").hidden = false;
    const cards = [];
    const cardFor = (sample) => {
      while (cards.length <= sample) {
        const card = newCard(prompt);
        place(card, cards.length ? cards[cards.length - 1] : after);
        // on a phone the thread is below the form: bring the answer into view as it starts
        if (!cards.length) card.scrollIntoView({ block: "nearest" });
        cards.push(card);
      }
      return cards[sample];
    };
    setStatus("Sending…");
    try {
      let finished = false;
      await gpt2bot.stream(url, body, (name, data) => {
        if (name === "queued") {
          setStatus(data.position <= 1 ? "Queued: you are next." : `Queued: position ${data.position}.`);
        } else if (name === "chunk") {
          setStatus("Writing…");
          const card = cardFor(data.sample);
          const out = card.querySelector(".output");
          out.textContent += data.text;
          // for extensions and the browser test: what the page showed when this chunk arrived
          document.dispatchEvent(new CustomEvent("gpt2bot:chunk", { detail: {
            sample: data.sample, shown: out.textContent.length, pending: card.classList.contains("pending") } }));
        } else if (name === "done") {
          finished = true;
          data.generations.forEach((g, i) => renderCard(cardFor(i), g));
          // the address names the conversation, so a reload (or a bookmark) shows it again
          if (data.generations.length) history.replaceState(null, "", `#c=${data.generations[0].conversation_id}`);
          setStatus(data.prompt_truncated ? "Done (the prompt was cut from the left to fit GPT-2's context)." : "Done. Rate it 👍 or 👎.");
        } else if (name === "error") {
          throw new Error(data.error);
        }
      }, controller.signal);
      if (!finished) throw new Error("The answer stopped early; please try again.");
      loadHistory();
    } catch (error) {
      cards.filter((c) => c.classList.contains("pending")).forEach((c) => c.remove());
      setStatus(error.name === "AbortError" ? "Stopped." : error.message, error.name !== "AbortError");
    } finally {
      busy = false;
      $("generate").disabled = false;
      $("stop").hidden = true;
    }
  }

  async function rate(card, emoji) {
    const id = card.dataset.id;
    const pressed = card.querySelector(`.rate[data-emoji="${emoji}"]`).getAttribute("aria-pressed") === "true";
    try {
      const answer = pressed
        ? await gpt2bot.call("DELETE", `/api/generations/${id}/rating`)
        : await gpt2bot.call("POST", `/api/generations/${id}/rating`, { emoji });
      renderCard(card, answer.generation);
      setStatus(pressed ? "Rating removed." : `Rated ${emoji}. Thanks!`);
      loadHistory();
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  async function loadHistory() {
    try {
      const { generations } = await gpt2bot.call("GET", "/api/history");
      const list = $("history");
      list.replaceChildren();
      if (!generations.length) list.append(el("li", "Nothing yet.", "empty"));
      for (const g of generations) {
        const item = el("li");
        const open = el("button", null, "link");
        open.type = "button";
        const head = g.prompt.length > 60 ? "…" + g.prompt.slice(-60) : g.prompt;
        const snippet = (head + g.output).replace(/\s+/g, " ").slice(0, 140);
        open.append(el("span", snippet, "snippet"), el("span", ` #${g.id}${g.my_rating ? " " + g.my_rating : ""}`, "dim"));
        open.addEventListener("click", () => {
          const card = newCard(g.prompt);
          place(card, null);
          renderCard(card, g);
          card.scrollIntoView({ behavior: "smooth", block: "nearest" });
        });
        item.append(open);
        list.append(item);
      }
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  async function loadConversation() {
    const match = /^#c=(\d+)$/.exec(location.hash);
    if (!match) return;
    try {
      const { generations } = await gpt2bot.call("GET", `/api/conversations/${match[1]}`);
      for (const g of generations) {
        const card = newCard(g.prompt);
        place(card, null);
        renderCard(card, g);
      }
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  async function deleteMyData() {
    const sure = window.confirm("Delete everything you generated and rated in this browser, " +
      "and keep it out of training? Model versions already trained are not retrained. This cannot be undone.");
    if (!sure) return;
    try {
      const { message } = await gpt2bot.call("POST", "/api/mydata/delete", { confirm: true });
      $("thread").replaceChildren(el("p", "Your data was deleted.", "empty"));
      history.replaceState(null, "", location.pathname);
      setStatus(message);
      loadHistory();
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  async function start() {
    try {
      const session = await gpt2bot.loadSession();
      $("model").textContent = `model: ${session.model_version}`;
      buildParams(session);
    } catch (error) {
      setStatus("The server is not answering; is gpt2bot running?", true);
      return;
    }
    $("generate-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const prompt = $("prompt").value;
      if (!prompt.trim()) { setStatus("The prompt is empty: write the start of the text to continue.", true); $("prompt").focus(); return; }
      run("/api/generate", { prompt, params: readParams() }, prompt, null);
    });
    $("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("generate-form").requestSubmit();
    });
    $("stop").addEventListener("click", () => controller && controller.abort());
    $("mydata-delete").addEventListener("click", deleteMyData);
    loadConversation();
    loadHistory();
  }

  start();
})();
