// The chat socket and the pieces every chat page shares (watch, studio, overlay, replay).
//
// Everything a user wrote (names, messages, questions, marker labels) and everything the
// server sent is put on the page as text: element properties and text nodes, never HTML.
// `el` below is the one way these pages build elements, and it refuses to set any *HTML
// property: there is no path from a string to the HTML parser.
"use strict";

const RECONNECT_FIRST = 1000;  // ms; doubled per failed attempt, up to the cap
const RECONNECT_CAP = 30000;
const PING_EVERY = 30000;  // ms: proxies close WebSockets idle for a minute (nginx's default)

// Refusals that would only be refused again: stay disconnected and say why.
const FINAL = new Set(["banned", "bad_name", "name_reserved", "no_such_room", "forbidden",
  "already_joined", "too_many_connections"]);
const POLICY_CLOSE = 1008;  // banned, refused join

export const EMOJI = { like: "👍", heart: "❤️", laugh: "😂", wow: "😮" };

/** An element with properties (className, textContent, title, ...) and children: strings
 * become text nodes. `dataset` is copied into data-* attributes. */
export const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (/HTML$/.test(key)) throw new TypeError(`el() sets text, never ${key}`);
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (value !== undefined && value !== null) node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
};

/** The chat WebSocket of `stream`: joins with `join()` on every (re)connection, hands each
 * object to `handlers.object`, reconnects with backoff unless the server refused for good.
 * A viewer's welcome carries a resume token: joining with it again keeps the same user id.
 * It is kept in localStorage under `handlers.resumeKey` (when given), so a page reload is
 * the same person too.
 *
 * handlers: join() -> the join object; welcome(welcome); object(obj); status(text, kind);
 * final(code, message): refused, not reconnecting; resumeKey. */
export class ChatSocket {
  constructor(stream, handlers) {
    this.url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}` +
      `/chat/${encodeURIComponent(stream)}`;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.joined = false;
    this.refusal = null;  // the error code that came before a close
    this.timer = null;
    this.pinger = null;
    // The identity a welcome gave: a reconnection keeps the same user.
    this.resume = handlers.resumeKey ? storage.get(handlers.resumeKey) : "";
  }

  start() {
    this.stopped = false;
    this.refusal = null;
    const ws = this.ws = new WebSocket(this.url);
    this.handlers.status?.("connecting…", "connecting");
    ws.addEventListener("open", () => {
      const join = this.handlers.join();
      if (this.resume && join.name) join.resume = this.resume;
      ws.send(JSON.stringify(join));
    });
    ws.addEventListener("message", (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      // The server batches several objects into one array frame when they are due at once.
      for (const obj of Array.isArray(data) ? data : [data]) this.receive(obj);
    });
    ws.addEventListener("close", (event) => this.closed(ws, event));
    this.pinger = setInterval(() => this.send({ type: "ping" }), PING_EVERY);
  }

  receive(obj) {
    if (!obj || typeof obj !== "object") return;
    if (obj.type === "welcome") {
      this.joined = true;
      this.attempt = 0;
      if (obj.resume) {
        this.resume = obj.resume;
        if (this.handlers.resumeKey) storage.set(this.handlers.resumeKey, obj.resume);
      }
      this.handlers.status?.("connected", "connected");
      this.handlers.welcome(obj);
      return;
    }
    if (obj.type === "error" && FINAL.has(obj.code)) this.refusal = obj;
    if (obj.type !== "pong") this.handlers.object(obj);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;  // an old socket, replaced on purpose
    clearInterval(this.pinger);
    this.joined = false;
    this.ws = null;
    if (this.stopped) return;
    if (this.refusal || event.code === POLICY_CLOSE) {
      const refusal = this.refusal || { code: "forbidden", message: event.reason };
      this.handlers.status?.("disconnected", "closed");
      this.handlers.final?.(refusal.code, refusal.message || "");
      return;
    }
    const delay = Math.min(RECONNECT_CAP, RECONNECT_FIRST * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter: a server restart must not be met by every viewer reconnecting in step.
    const wait = delay * (0.5 + Math.random() / 2);
    this.handlers.status?.(`reconnecting in ${Math.ceil(wait / 1000)} s…`, "reconnecting");
    this.timer = setTimeout(() => this.start(), wait);
  }

  /** Send one object; false when not joined (the caller says so). */
  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.joined) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.joined = false;
  }
}

const isPictureUrl = (picture) => /^(https?:\/\/|\/)/i.test(picture);

/** A gift's picture: an image for a URL, else its short text (an emoji). */
export const giftPicture = (picture, className = "gift-picture") => (
  isPictureUrl(picture || "")
    ? el("img", { className, src: picture, alt: "", width: 32, height: 32 })
    : el("span", { className, textContent: picture || "🎁" }));

const plural = (title, count) => (count === 1 || /s$/i.test(title) ? title : `${title}s`);

/** "Ada sent 3 Roses". */
export const giftText = (gift) => {
  const count = gift.count || 1;
  const title = (gift.gift && gift.gift.title) || "gift";
  const who = (gift.user && gift.user.name) || "Someone";
  return count === 1 ? `${who} sent a ${title}` : `${who} sent ${count} ${plural(title, count)}`;
};

export const timeOf = (ms) => (ms ? new Date(ms).toLocaleTimeString([], {
  hour: "2-digit", minute: "2-digit",
}) : "");

/** A chat message as a list item: who (with their role) and what, both as text. */
export const messageItem = (message) => {
  const user = message.user || {};
  const role = user.role || "viewer";
  return el("li", {
    className: `message role-${role}`, title: timeOf(message.at),
    dataset: { id: message.id || "", user: user.id || "" },
  },
  el("span", { className: "who", textContent: user.name || "?" }),
  role === "viewer" ? null : el("span", { className: "badge", textContent: role }),
  el("span", { className: "text", textContent: message.text || "" }));
};

export const giftItem = (gift) => el("li", {
  className: "gift", dataset: { id: gift.id || "" }, title: timeOf(gift.at),
}, giftPicture(gift.gift && gift.gift.picture), el("span", { textContent: giftText(gift) }));

/** A message list that keeps the newest `limit` items and follows the bottom while the reader
 * is there (not while they scrolled up to read). */
export class MessageList {
  constructor(list, limit = 200) {
    this.list = list;
    this.limit = limit;
  }

  add(item) {
    const list = this.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.children.length > this.limit) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
    return item;
  }

  remove(id) {
    for (const item of this.list.querySelectorAll("[data-id]")) {
      if (item.dataset.id === id) item.remove();
    }
  }

  removeUser(userId) {
    for (const item of this.list.querySelectorAll("[data-user]")) {
      if (item.dataset.user === userId) item.remove();
    }
  }

  clear() { this.list.replaceChildren(); }
}

/** A box above the chat holding one message or question (pinned, answering now), or hidden. */
export const showBox = (box, entry) => {
  box.hidden = !entry;
  const body = box.querySelector(".body");
  if (!entry) {
    body.replaceChildren();
    box.dataset.id = "";
    return;
  }
  box.dataset.id = entry.id || "";
  body.replaceChildren(
    el("span", { className: "who", textContent: (entry.user && entry.user.name) || "" }),
    el("span", { className: "text", textContent: entry.text || "" }));
};

// What an error code means to the person who caused it, when the server's own message is
// not enough (the wait, for instance).
const WAIT = (error) => (error.retry_after ? ` Wait ${Math.ceil(error.retry_after)} s.` : "");
const SAYINGS = {
  rate_limited: (e) => `You are sending too fast.${WAIT(e)}`,
  slow_mode: (e) => `Slow mode is on.${WAIT(e)}`,
  timed_out: (e) => `You are timed out.${WAIT(e)}`,
  too_long: () => "That message is too long.",
  empty: () => "That message is empty.",
  filtered: () => "That message contains a word this chat does not allow.",
  chat_disabled: () => "Chat is turned off.",
  gifts_disabled: () => "Gifts are turned off.",
  gift_refused: (e) => `The gift did not go through${e.message ? `: ${e.message}` : "."}`,
  banned: () => "You are banned from this chat.",
  bad_name: (e) => e.message || "That name cannot be used.",
  name_reserved: () => "That name is reserved: choose another.",
};

export const errorText = (error) => {
  const saying = SAYINGS[error.code];
  return saying ? saying(error) : (error.message || `Error: ${error.code}`);
};

/** A short notice that hides itself after a while. */
export const notifier = (box) => {
  let timer = null;
  return (text, seconds = 6) => {
    box.textContent = text;
    box.hidden = false;
    clearTimeout(timer);
    if (seconds) timer = setTimeout(() => { box.hidden = true; }, seconds * 1000);
  };
};

export const storage = {
  get(key) { try { return localStorage.getItem(key) || ""; } catch { return ""; } },
  set(key, value) { try { localStorage.setItem(key, value); } catch { /* private mode */ } },
  remove(key) { try { localStorage.removeItem(key); } catch { /* private mode */ } },
};
