// The OBS overlay: the last few chat messages fading out, gift alerts one after another, and
// the question being answered. Read-only: it joins to watch, never writes, and keeps
// reconnecting for as long as OBS keeps it open. State for tests: window.golive.overlay.
import { ChatSocket, giftPicture, giftText, el, showBox } from "/static/chat.js";

const root = document.getElementById("overlay");
const list = document.getElementById("messages");  // each part is absent when hidden (?chat=0)
const alerts = document.getElementById("alerts");
const answering = document.getElementById("answering");
const SHOWN = 8;  // messages on screen at most
const MESSAGE_SECONDS = 30;  // then it fades out
const ALERT_SECONDS = 5;
const state = (window.golive = window.golive || {}).overlay = { alerts: 0, connected: false };

const fadeOut = (item) => {
  item.classList.add("gone");
  item.addEventListener("transitionend", () => item.remove(), { once: true });
  setTimeout(() => item.remove(), 2000);  // in case no transition ran (hidden tab)
};

const addMessage = (message) => {
  if (!list) return;
  const user = message.user || {};
  const item = el("li", { className: `role-${user.role || "viewer"}`,
    dataset: { id: message.id || "" } },
  el("span", { className: "who", textContent: user.name || "" }),
  el("span", { className: "text", textContent: message.text || "" }));
  list.append(item);
  while (list.children.length > SHOWN) list.firstElementChild.remove();
  setTimeout(() => fadeOut(item), MESSAGE_SECONDS * 1000);
};

// Gift alerts wait their turn: each is on screen for ALERT_SECONDS.
const queue = [];
let showing = false;
const nextAlert = () => {
  const gift = queue.shift();
  if (!gift) {
    showing = false;
    return;
  }
  showing = true;
  state.alerts += 1;
  const alert = el("div", { className: "alert" },
    giftPicture(gift.gift && gift.gift.picture, "alert-picture"),
    el("span", { className: "alert-text", textContent: giftText(gift) }));
  alerts.replaceChildren(alert);
  setTimeout(() => {
    fadeOut(alert);
    setTimeout(nextAlert, 600);
  }, ALERT_SECONDS * 1000);
};

const socket = new ChatSocket(root.dataset.stream, {
  join: () => ({ type: "join", watch: true }),
  welcome: (obj) => {
    if (list) list.replaceChildren();
    for (const message of (obj.history || []).slice(-SHOWN)) addMessage(message);
    if (answering) showBox(answering, obj.room && obj.room.answering);
  },
  object: (obj) => {
    if (obj.type === "message") addMessage(obj);
    else if (obj.type === "deleted" && list) {
      for (const item of list.querySelectorAll("li")) if (item.dataset.id === obj.id) item.remove();
    } else if (obj.type === "gift" && alerts) {
      queue.push(obj);
      if (!showing) nextAlert();
    } else if (obj.type === "answering" && answering) showBox(answering, obj.question);
  },
  status: (text, kind) => { state.connected = kind === "connected"; },
  // A refusal (the room is gone, the server restarted without it): look again later.
  final: () => setTimeout(() => socket.start(), 30000),
});
socket.start();
