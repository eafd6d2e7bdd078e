// The watch page's chat: read along, join with a display name, write, ask, react and gift.
// State for people and tests: window.golive.chat.
import {
  ChatSocket, EMOJI, MessageList, el, errorText, giftItem, giftPicture, messageItem, notifier,
  showBox, storage,
} from "/static/chat.js";

const root = document.getElementById("chat");
const stream = root.dataset.stream;
const NAME_KEY = "golive.chat.name";
const REACT_EVERY = 300;  // ms: taps gathered into one `react` per kind
const MAX_REACT = 50;  // the most one `react` may carry
const MAX_FLOATS = 6;  // float-ups per kind per update: a flood stays readable

const $ = (id) => document.getElementById(id);
const messages = new MessageList($("messages"));
const joinForm = $("join-form");
const sendForm = $("send-form");
const textBox = sendForm.elements.text;
const notice = notifier($("chat-notice"));
const picker = $("gift-picker");
const giftButton = $("gift-button");
const reactionBar = $("reactions");
const state = (window.golive = window.golive || {}).chat = {
  connected: false, user: null, room: null, notices: [], final: null,
};
const say = (text, seconds) => {
  state.notices.push(text);
  notice(text, seconds);
};

let socket = null;
let me = null;
let room = null;
let mutedUntil = 0;  // ms: timed out until then

const isStaff = () => me && (me.role === "creator" || me.role === "moderator");

const connect = (name) => {
  if (socket) socket.stop();
  socket = new ChatSocket(stream, {
    // Without a name, a read-only join: the chat shows before the viewer picks a name.
    join: () => (name ? { type: "join", name } : { type: "join", watch: true }),
    resumeKey: `golive.chat.resume.${stream}`,
    welcome,
    object: receive,
    status: (text, kind) => {
      state.connected = kind === "connected";
      $("chat-status").textContent = kind === "connected" ? "" : text;
    },
    final: (code, message) => {
      state.final = code;
      if (!name) {  // a read-only join refused: joining with a name may still work
        if (code !== "banned") return showJoin(storage.get(NAME_KEY));
      }
      say(errorText({ code, message }), 0);
      if (name && ["bad_name", "name_reserved", "already_joined"].includes(code)) {
        storage.remove(NAME_KEY);
        showJoin(name);
        connect("");  // keep reading while a better name is chosen
      } else {
        sendForm.hidden = true;
        joinForm.hidden = true;
      }
    },
  });
  socket.start();
};

const showJoin = (name) => {
  joinForm.hidden = false;
  sendForm.hidden = true;
  if (name) joinForm.elements.name.value = name;
};

// The question being answered, above the chat; the viewer's own question says so too (the
// server tells staff alone of a question's states, and everyone of what is being answered).
let answeringId = "";
const answering = (question) => {
  showBox($("answering"), question);
  const previous = document.getElementById(`question-${answeringId}`);
  if (previous) setQuestionState(previous, "done");
  answeringId = question ? question.id : "";
  const mine = question && document.getElementById(`question-${question.id}`);
  if (mine) setQuestionState(mine, "answering");
};

const welcome = (obj) => {
  me = obj.user && obj.user.name ? obj.user : null;
  room = obj.room || {};
  state.user = me;
  state.room = room;
  messages.clear();  // a reconnection's history replaces what was shown
  for (const message of obj.history || []) messages.add(messageItem(message));
  showBox($("pinned"), room.pinned);
  answering(room.answering);
  setViewers(room.viewers);
  setRules();
  buildReactions(room.reactions || []);
  buildGifts(room.gifting === true ? room.gifts || [] : []);
  textBox.maxLength = (room.limits && room.limits.max_length) || 300;
  if (me) {
    joinForm.hidden = true;
    sendForm.hidden = false;
    $("chat-as").textContent = `as ${me.name}`;
  } else {
    showJoin(storage.get(NAME_KEY));
  }
};

const receive = (obj) => {
  switch (obj.type) {
    case "message": messages.add(messageItem(obj)); break;
    case "deleted":
      messages.remove(obj.id);
      if ($("pinned").dataset.id === obj.id) showBox($("pinned"), null);
      break;
    case "pinned": showBox($("pinned"), obj.message); break;
    case "answering": answering(obj.question); break;
    case "question": ownQuestion(obj); break;
    case "gift": messages.add(giftItem(obj)); break;
    case "reactions": showReactions(obj); break;
    case "viewers": setViewers(obj); break;
    case "slow_mode": room.slow_mode = obj.seconds; setRules(); break;
    case "chat_enabled": room.chat_enabled = obj.enabled; setRules(); break;
    case "banned":
      messages.removeUser(obj.user && obj.user.id);
      if (me && obj.user && obj.user.id === me.id) say("You are banned from this chat.", 0);
      break;
    case "timed_out":
      if (me && obj.user && obj.user.id === me.id) {
        mutedUntil = obj.until || Date.now() + (obj.seconds || 0) * 1000;
        const minutes = Math.max(1, Math.round((obj.seconds || 0) / 60));
        say(`A moderator timed you out for ${minutes} min.`, 10);
      }
      break;
    case "error": say(errorText(obj)); break;
    default: break;  // markers, supporters, ...: not shown to viewers
  }
};

// The questions this viewer asked come back to them alone; shown in the list, marked.
const QUESTION_STATES = { queued: "asked", answering: "being answered", done: "answered" };
const setQuestionState = (item, questionState) => {
  item.querySelector(".badge").textContent = QUESTION_STATES[questionState] || "asked";
};
const ownQuestion = (question) => {
  const id = `question-${question.id}`;
  const existing = document.getElementById(id);
  if (existing) {
    setQuestionState(existing, question.state);
    return;
  }
  messages.add(el("li", { className: "question", id }, el("span", {
    className: "who", textContent: "Your question",
  }), el("span", { className: "badge" }), el("span", {
    className: "text", textContent: question.text || "",
  })));
  setQuestionState(document.getElementById(id), question.state);
};

const setViewers = (viewers) => {
  if (!viewers) return;
  const text = `${viewers.total} watching`;
  $("chat-viewers").textContent = `${viewers.chat} in chat`;
  // The header's count from the room (HLS viewers and chat together) once it is known; the
  // page's API poll leaves it alone from then on.
  const header = document.getElementById("viewers");
  if (header) header.textContent = text;
  (window.golive || {}).roomViewers = viewers.total;
};

const setRules = () => {
  const rules = [];
  if (room.chat_enabled === false) rules.push("Chat is off");
  if (room.slow_mode) rules.push(`Slow mode: one message every ${room.slow_mode} s`);
  $("chat-rules").textContent = rules.join(" · ");
  $("chat-rules").hidden = !rules.length;
};

joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = joinForm.elements.name.value.trim();
  if (!name) return;
  storage.set(NAME_KEY, name);
  notice("", 0.01);
  connect(name);
});

$("chat-leave").addEventListener("click", () => {
  storage.remove(NAME_KEY);
  connect("");
});

sendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = textBox.value.trim();
  if (!text) return;
  if (mutedUntil > Date.now()) {
    say(`You are timed out for ${Math.ceil((mutedUntil - Date.now()) / 1000)} s more.`);
    return;
  }
  if (room.chat_enabled === false && !isStaff()) {
    say("Chat is turned off.");
    return;
  }
  const type = sendForm.elements.mode.value === "ask" ? "ask" : "message";
  if (!socket.send({ type, text })) {
    say("Not connected: your message was not sent.");
    return;
  }
  textBox.value = "";
  if (type === "ask") setMode("message");  // a question is a one-off: back to chatting
});

const setMode = (mode) => {
  sendForm.elements.mode.value = mode;
  textBox.placeholder = mode === "ask" ? "Ask a question…" : "Say something…";
};
sendForm.elements.mode.forEach((radio) => radio.addEventListener("change", () => {
  if (radio.checked) setMode(radio.value);
}));

// Reactions: taps are counted here and sent once per kind every REACT_EVERY ms, so a burst
// of taps costs one frame. The taps of others arrive in `reactions` (ours included: those
// already floated when tapped are not floated again).
const pending = {};
const floated = {};
const buttons = {};
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const buildReactions = (kinds) => {
  reactionBar.replaceChildren();
  for (const kind of kinds) {
    const button = el("button", {
      type: "button", className: "react", title: kind, ariaLabel: kind, dataset: { kind },
    }, el("span", { className: "emoji", textContent: EMOJI[kind] || kind }),
    el("span", { className: "count", textContent: "" }));
    buttons[kind] = button;
    reactionBar.append(button);
  }
};

const floatUp = (kind) => {
  const button = buttons[kind];
  if (!button || reducedMotion.matches) return;
  const float = el("span", { className: "float", textContent: EMOJI[kind] || kind });
  float.style.left = `${button.offsetLeft + button.offsetWidth / 2 + (Math.random() - 0.5) * 16}px`;
  float.addEventListener("animationend", () => float.remove());
  reactionBar.append(float);
};

reactionBar.addEventListener("click", (event) => {
  const button = event.target.closest("button.react");
  if (!button || !me) {
    if (button) say("Join the chat to react.");
    return;
  }
  const kind = button.dataset.kind;
  pending[kind] = (pending[kind] || 0) + 1;
  floatUp(kind);
});

setInterval(() => {
  for (const [kind, count] of Object.entries(pending)) {
    const sent = Math.min(count, MAX_REACT);
    if (socket && socket.send({ type: "react", kind, count: sent })) {
      floated[kind] = (floated[kind] || 0) + sent;
    }
    delete pending[kind];  // taps beyond one frame's worth, or while offline, are let go
  }
}, REACT_EVERY);

const compact = (n) => (n >= 10000 ? `${Math.round(n / 1000)}k` : n >= 1000
  ? `${(n / 1000).toFixed(1)}k` : String(n));

const showReactions = ({ counts = {}, totals = {} }) => {
  for (const [kind, button] of Object.entries(buttons)) {
    button.querySelector(".count").textContent = totals[kind] ? compact(totals[kind]) : "";
  }
  for (const [kind, count] of Object.entries(counts)) {
    const own = Math.min(count, floated[kind] || 0);
    floated[kind] = (floated[kind] || 0) - own;
    for (let i = 0; i < Math.min(count - own, MAX_FLOATS); i += 1) {
      setTimeout(() => floatUp(kind), i * 80);
    }
  }
};

// Gifts: the catalogue comes with the welcome; the button shows only while gifting is on.
const buildGifts = (gifts) => {
  giftButton.hidden = !gifts.length;
  picker.hidden = true;
  const list = $("gift-list");
  list.replaceChildren(...gifts.map((gift) => el("li", {}, el("button", {
    type: "button", className: "gift-choice", dataset: { gift: gift.name },
    title: `${gift.title}: ${gift.coins} coins each`,
  }, giftPicture(gift.picture), el("span", { textContent: gift.title }),
  el("span", { className: "muted", textContent: `${gift.coins} coins` })))));
};

giftButton.addEventListener("click", () => { picker.hidden = !picker.hidden; });
$("gift-close").addEventListener("click", () => { picker.hidden = true; });
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") picker.hidden = true;
});
$("gift-list").addEventListener("click", (event) => {
  const choice = event.target.closest("button.gift-choice");
  if (!choice) return;
  const count = Math.max(1, Math.min(100, Number($("gift-count").value) || 1));
  if (!socket.send({ type: "gift", gift: choice.dataset.gift, count })) {
    say("Not connected: the gift was not sent.");
    return;
  }
  picker.hidden = true;
});

connect(storage.get(NAME_KEY));
