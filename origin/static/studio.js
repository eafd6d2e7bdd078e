// The studio: the creator's chat with one-click moderation, the room's settings, questions,
// gifts, markers and the stream's health. The socket joins without a token: the server gives
// the creator's role from the studio's session cookie, sent with the upgrade.
// State for people and tests: window.golive.studio.
import {
  ChatSocket, MessageList, el, errorText, giftItem, messageItem, notifier, showBox, timeOf,
} from "/static/chat.js";

const $ = (id) => document.getElementById(id);
const stream = $("studio").dataset.stream;
const messages = new MessageList($("messages"), 500);
const notice = notifier($("chat-notice"));
const state = (window.golive = window.golive || {}).studio = {
  connected: false, role: null, notices: [], sent: [],
};
const say = (text, seconds) => {
  state.notices.push(text);
  notice(text, seconds);
};

let me = null;
let room = {};
const questions = new Map();  // id -> question, in the order they came
const banned = new Map();  // user id -> user, banned from this page
let giftCoins = 0;

const send = (obj) => {
  if (socket.send(obj)) {
    state.sent.push(obj.type);
    return true;
  }
  say("Not connected: that did not reach the chat.");
  return false;
};

// A message with its moderation buttons. The creator's own messages get none but "pin".
const modButton = (action, label, title, danger = false) => el("button", {
  type: "button", className: danger ? "danger" : "", textContent: label, title,
  dataset: { action },
});

const moderated = (message) => {
  const item = messageItem(message);
  const user = message.user || {};
  const tools = [modButton("pin", "pin", "Pin this message above the chat")];
  if (!me || user.id !== me.id) {
    tools.unshift(modButton("delete", "delete", "Delete this message", true));
  }
  if (user.role === "viewer") {
    tools.push(
      modButton("timeout", "5 min", `Time ${user.name} out for 5 minutes`),
      modButton("ban", "ban", `Ban ${user.name} from this chat`, true),
      modButton("history", "messages", `See ${user.name}'s messages`),
    );
  }
  item.dataset.name = user.name || "";
  item.append(el("span", { className: "mod" }, ...tools));
  return item;
};

$("messages").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const item = button && button.closest("li[data-id]");
  if (!item) return;
  const { id, user, name } = item.dataset;
  switch (button.dataset.action) {
    case "delete": send({ type: "delete", id }); break;
    case "pin": send({ type: "pin", id }); break;
    case "timeout": send({ type: "timeout", user, seconds: 300 }); break;
    case "ban":
      if (send({ type: "ban", user })) banned.set(user, { id: user, name });
      break;
    case "history":
      $("user-name").textContent = name;
      $("user-messages").replaceChildren(el("li", { className: "muted", textContent: "…" }));
      $("user-panel").hidden = false;
      send({ type: "user_messages", user });
      break;
    default: break;
  }
});
$("unpin").addEventListener("click", () => send({ type: "pin", id: null }));
$("user-close").addEventListener("click", () => { $("user-panel").hidden = true; });

const socket = new ChatSocket(stream, {
  // The creator chats under the stream's name (display names stop at 32 characters).
  join: () => ({ type: "join", name: stream.slice(0, 32) }),
  welcome: (obj) => {
    me = obj.user || null;
    room = obj.room || {};
    state.role = me && me.role;
    if (!me || me.role !== "creator") {
      say("This page is not signed in as the creator any more: reload it to sign in again.", 0);
    }
    messages.clear();
    for (const message of obj.history || []) messages.add(moderated(message));
    showBox($("pinned"), room.pinned);
    showBox($("answering"), room.answering);
    setViewers(room.viewers);
    setSettings();
    showFilter(room.filter || { words: [], patterns: [] });
    questions.clear();
    for (const question of room.questions || []) questions.set(question.id, question);
    if (room.answering) questions.set(room.answering.id, room.answering);
    showQuestions();
    showSupporters(room.supporters || []);
    $("send-form").elements.text.maxLength = (room.limits && room.limits.max_length) || 300;
  },
  object: (obj) => {
    switch (obj.type) {
      case "message": messages.add(moderated(obj)); break;
      case "deleted":
        messages.remove(obj.id);
        if ($("pinned").dataset.id === obj.id) showBox($("pinned"), null);
        break;
      case "pinned": showBox($("pinned"), obj.message); break;
      case "answering":
        showBox($("answering"), obj.question);
        if (obj.question) questions.set(obj.question.id, obj.question);
        showQuestions();
        break;
      case "question":
        if (obj.state === "done") questions.delete(obj.id);
        else questions.set(obj.id, obj);
        showQuestions();
        break;
      case "gift": addGift(obj); break;
      case "supporters": showSupporters(obj.top || []); break;
      case "viewers": setViewers(obj); break;
      case "slow_mode": room.slow_mode = obj.seconds; setSettings(); break;
      case "chat_enabled": room.chat_enabled = obj.enabled; setSettings(); break;
      case "filter": showFilter(obj); break;
      case "user_messages": showUserMessages(obj); break;
      case "marker": addMarker(obj); break;
      case "timed_out":
        system(`${(obj.user && obj.user.name) || "Someone"} is timed out for ` +
          `${Math.round((obj.seconds || 0) / 60)} min.`);
        break;
      case "banned":
        if (obj.user) banned.set(obj.user.id, obj.user);
        showBanned();
        system(`${(obj.user && obj.user.name) || "Someone"} is banned.`);
        break;
      case "unbanned":
        if (obj.user) banned.delete(obj.user.id);
        showBanned();
        system(`${(obj.user && obj.user.name) || "Someone"} may chat again.`);
        break;
      case "error": say(errorText(obj)); break;
      default: break;
    }
  },
  status: (text, kind) => {
    state.connected = kind === "connected";
    $("chat-status").textContent = kind === "connected" ? "" : text;
  },
  // Without a valid session cookie the server sees a viewer using the stream's own name.
  final: (code, message) => say(code === "name_reserved" || code === "bad_name"
    ? "This page is not signed in as the creator any more: reload it to sign in again."
    : errorText({ code, message }), 0),
});

const system = (text) => messages.add(el("li", { className: "system", textContent: text }));

const setViewers = (viewers) => {
  if (!viewers) return;
  $("chat-viewers").textContent = `${viewers.chat} in chat`;
  $("health-chat").textContent = String(viewers.chat);
  $("viewers").textContent = `${viewers.total} watching`;
};

const setSettings = () => {
  $("chat-enabled").checked = room.chat_enabled !== false;
  const select = $("slow-mode");
  const seconds = String(room.slow_mode || 0);
  if (![...select.options].some((option) => option.value === seconds)) {
    select.add(new Option(`${seconds} s`, seconds));
  }
  select.value = seconds;
  const rules = [];
  if (room.chat_enabled === false) rules.push("Chat is off for viewers");
  if (room.slow_mode) rules.push(`Slow mode: ${room.slow_mode} s`);
  $("chat-rules").textContent = rules.join(" · ");
  $("chat-rules").hidden = !rules.length;
};

$("chat-enabled").addEventListener("change", (event) => {
  send({ type: "chat", enabled: event.target.checked });
});
$("slow-mode").addEventListener("change", (event) => {
  send({ type: "slow_mode", seconds: Number(event.target.value) });
});
$("settings").addEventListener("submit", (event) => event.preventDefault());

// The word filter: what the room refuses, as chips with a remove button each; those of the
// config file stay (only the operator removes them, there).
const chips = (list, values, configured, field) => {
  list.replaceChildren(...values.map((value) => el("li", {
    title: configured.includes(value) ? "set in the config file" : "",
  }, el("span", { textContent: value }), configured.includes(value) ? null : el("button", {
    type: "button", textContent: "×", title: `Allow ${value} again`,
    ariaLabel: `remove ${value}`, dataset: { field, value },
  }))));
};
const showFilter = (filter) => {
  const configured = filter.configured || {};
  chips($("filter-words"), filter.words || [], configured.words || [], "remove");
  chips($("filter-patterns"), filter.patterns || [], configured.patterns || [],
    "remove_patterns");
};
for (const id of ["filter-words", "filter-patterns"]) {
  $(id).addEventListener("click", (event) => {
    const button = event.target.closest("button[data-field]");
    if (button) send({ type: "filter", [button.dataset.field]: [button.dataset.value] });
  });
}
const addForm = (form, input, field) => form.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = form.elements[input].value.trim();
  if (value && send({ type: "filter", [field]: [value] })) form.elements[input].value = "";
});
addForm($("filter-form"), "word", "add");
addForm($("pattern-form"), "pattern", "add_patterns");

const showBanned = () => {
  $("banned").replaceChildren(...[...banned.values()].map((user) => el("li", {},
    el("span", { textContent: user.name || user.id }),
    el("button", { type: "button", textContent: "unban", dataset: { user: user.id } }))));
  $("banned-none").hidden = banned.size > 0;
};
$("banned").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-user]");
  if (button) send({ type: "unban", user: button.dataset.user });
});

// The question queue: answer one now (pinned above everyone's chat), then mark it done.
const showQuestions = () => {
  const items = [...questions.values()].filter((q) => q.state !== "done").map((question) => {
    const answering = question.state === "answering";
    return el("li", { className: answering ? "answering-now" : "", dataset: { id: question.id } },
      el("span", { className: "who", textContent: (question.user && question.user.name) || "" }),
      el("span", { textContent: question.text || "" }),
      el("div", { className: "actions" },
        answering ? null : el("button", { type: "button", textContent: "answer now",
          dataset: { action: "answer" } }),
        el("button", { type: "button", textContent: "done", dataset: { action: "done" } })));
  });
  $("questions").replaceChildren(...items);
  $("questions-none").hidden = items.length > 0;
  $("question-count").textContent = items.length ? `(${items.length})` : "";
};
$("questions").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const item = button && button.closest("li[data-id]");
  if (item) send({ type: button.dataset.action, id: item.dataset.id });
});

const addGift = (gift) => {
  giftCoins += gift.coins || 0;
  $("gift-total").textContent = `${giftCoins} coins`;
  $("gifts-received").prepend(giftItem(gift));
  $("gifts-none").hidden = true;
  messages.add(giftItem(gift));
};

const showSupporters = (top) => {
  $("supporters").replaceChildren(...top.map((supporter) => el("li", {},
    el("span", { className: "who", textContent: (supporter.user && supporter.user.name) || "" }),
    ` · ${supporter.coins} coins`)));
};

const showUserMessages = (obj) => {
  if (obj.user && obj.user.name) $("user-name").textContent = obj.user.name;
  const list = obj.messages || [];
  $("user-messages").replaceChildren(...(list.length ? list.map((message) => el("li", {
    className: message.deleted || message.deleted_by ? "deleted" : "",
  }, el("span", { className: "muted", textContent: `${timeOf(message.at)} ` }),
  el("span", { className: "text", textContent: message.text || "" }))) : [el("li", {
    className: "muted", textContent: "no messages" })]));
};

const addMarker = (marker) => {
  $("markers").prepend(el("li", {}, el("span", { className: "muted",
    textContent: `${timeOf(marker.at)} ` }), el("span", { textContent: marker.label || "" })));
};
$("marker-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.label;
  const label = input.value.trim();
  if (label && send({ type: "marker", label })) input.value = "";
});

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.text;
  const text = input.value.trim();
  if (text && send({ type: "message", text })) input.value = "";
});

// Stream health, from the public API: the broadcast's state and size, and (from the list)
// the ingest bitrate.
const clock = (total) => {
  const s = Math.max(0, Math.floor(total));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = s % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : String(m)) + `:${String(r).padStart(2, "0")}`;
};
let liveSince = null;  // ms, this browser's clock
const showUptime = () => {
  $("health-uptime").textContent = liveSince === null ? "-"
    : clock((Date.now() - liveSince) / 1000);
};
setInterval(showUptime, 1000);
const health = async () => {
  try {
    const [one, all] = await Promise.all([
      fetch(`/api/streams/${encodeURIComponent(stream)}`, { cache: "no-store" }),
      fetch("/api/streams", { cache: "no-store" }),
    ]);
    const info = one.ok ? await one.json() : null;
    const entry = all.ok ? ((await all.json()).streams || []).find((s) => s.name === stream)
      : null;
    const live = info ? info.state : "offline";
    $("state").textContent = live;
    $("state").className = `state ${live}`;
    $("health-state").textContent = live;
    // Counted on here between polls, so the clock ticks each second.
    liveSince = info && live !== "ended" ? Date.now() - info.uptime_seconds * 1000 : null;
    showUptime();
    $("health-resolution").textContent = info && info.resolution
      ? info.resolution.join("×") : "-";
    $("health-viewers").textContent = info ? String(info.viewers) : "-";
    $("health-bitrate").textContent = entry
      ? `${(entry.ingest_bitrate / 1e6).toFixed(2)} Mbit/s` : "-";
    state.health = { state: live, bitrate: entry ? entry.ingest_bitrate : null };
  } catch { /* the next poll tries again */ }
};
health();
setInterval(health, 5000);
if ($("studio").dataset.chat === "1") {
  socket.start();
} else {  // `golive serve --no-chat`: the stream's health alone
  $("chat-status").textContent = "the chat is turned off on this server";
  $("send-form").hidden = true;
}
