// Shared helpers: the session (CSRF token), JSON calls, Server-Sent Events over fetch.
// User-written text is only ever put into the page with textContent, never as HTML.
"use strict";

const gpt2bot = (() => {
  let session = null;

  async function loadSession() {
    const response = await fetch("/api/session", { credentials: "same-origin" });
    session = await response.json();
    return session;
  }

  function headers(extra) {
    return Object.assign({ "X-CSRF-Token": session ? session.csrf : "" }, extra || {});
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) { /* not JSON */ }
    return `The server answered ${response.status}; please try again.`;
  }

  async function call(method, url, body) {
    const init = { method, credentials: "same-origin", headers: headers() };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(url, init);
    if (!response.ok) throw new Error(await errorOf(response));
    return response.json();
  }

  // POST `body` to `url` and call onEvent(name, data) for each Server-Sent Event.
  async function stream(url, body, onEvent, signal) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", signal,
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body || {}),
    });
    if (!response.ok) {
      const retry = response.headers.get("Retry-After");
      const message = await errorOf(response);
      throw new Error(retry ? `${message} (retry in ${retry} s)` : message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        onEvent(name, JSON.parse(data.join("\n") || "{}"));
      }
    }
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function when(iso) {
    const date = new Date(iso);
    return isNaN(date) ? "" : date.toLocaleString();
  }

  return { loadSession, call, stream, el, when, get session() { return session; } };
})();
