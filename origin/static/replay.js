// A recording's replay: the VOD played with hls.js and its chat (chat.jsonl beside the
// playlist, the wire's objects one a line) shown in step with the video: each object when the
// picture's program date passes its `pdt`. Seeking back replays the chat from the start.
// State for people and tests: window.golive.replay.
import { MessageList, el, giftItem, messageItem, showBox } from "/static/chat.js";

const $ = (id) => document.getElementById(id);
const video = $("video");
const messages = new MessageList($("messages"), 300);
const state = (window.golive = window.golive || {}).replay = {
  events: 0, applied: 0, playingDate: null, fatal: null,
};
let events = [];  // {time: ms, obj}, by time
let applied = 0;
let shownUntil = -Infinity;
let startMs = null;  // the program date of the recording's first frame
let hls = null;

// `pdt` is an ISO date on the wire (epoch seconds in some records); without one (the stream
// was not live) the server's clock `at` (ms) places the object.
const timeOf = (obj) => {
  if (typeof obj.pdt === "string") return Date.parse(obj.pdt);
  if (typeof obj.pdt === "number") return obj.pdt * 1000;
  return typeof obj.at === "number" ? obj.at : NaN;
};

const playingDate = () => {
  if (hls && hls.playingDate) return hls.playingDate.getTime();
  const start = video.getStartDate ? video.getStartDate().getTime() : NaN;  // Safari
  return Number.isFinite(start) ? start + video.currentTime * 1000 : null;
};

const reset = () => {
  messages.clear();
  showBox($("pinned"), null);
  showBox($("answering"), null);
  applied = 0;
};

const apply = (obj) => {
  switch (obj.type) {
    case "message": messages.add(messageItem(obj)); break;
    case "deleted": messages.remove(obj.id); break;
    case "pinned": showBox($("pinned"), obj.message); break;
    case "answering": showBox($("answering"), obj.question); break;
    case "gift": messages.add(giftItem(obj)); break;
    case "banned": messages.removeUser(obj.user && obj.user.id); break;
    case "marker":
      messages.add(el("li", { className: "marker", textContent: `📍 ${obj.label || ""}` }));
      break;
    default: break;
  }
};

const tick = () => {
  const now = playingDate();
  if (now === null) return;
  state.playingDate = new Date(now).toISOString();
  if (now < shownUntil - 1000) reset();  // sought back: replay from the start
  shownUntil = now;
  while (applied < events.length && events[applied].time <= now) {
    apply(events[applied].obj);
    applied += 1;
  }
  state.applied = applied;
};

// The creator's markers as chapters: each seeks the video to its moment. Their offsets are
// known once the playlist (its first program date) is.
const offset = (time) => {
  if (startMs === null) return "";
  const s = Math.max(0, Math.floor((time - startMs) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};
const chapters = () => {
  const markers = events.filter((e) => e.obj.type === "marker");
  $("chapters-panel").hidden = !markers.length;
  $("chapters").replaceChildren(...markers.map((marker) => el("li", {}, el("button", {
    type: "button", dataset: { time: String(marker.time) },
  }, el("span", { className: "muted", textContent: offset(marker.time) }),
  el("span", { textContent: marker.obj.label || "marker" })))));
};
$("chapters").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-time]");
  if (!button || startMs === null) return;
  video.currentTime = Math.max(0, (Number(button.dataset.time) - startMs) / 1000);
  video.play().catch(() => {});
});

const loadChat = async () => {
  const status = $("chat-status");
  try {
    const response = await fetch(video.dataset.chat, { cache: "no-cache" });
    if (!response.ok) {
      status.textContent = "no chat was kept with this recording";
      return;
    }
    const lines = (await response.text()).split("\n");
    events = lines.flatMap((line) => {
      if (!line.trim()) return [];
      try {
        const obj = JSON.parse(line);
        const time = obj && typeof obj === "object" ? timeOf(obj) : NaN;
        return Number.isFinite(time) ? [{ time, obj }] : [];
      } catch { return []; }  // a torn last line (the recording was cut): skip it
    }).sort((a, b) => a.time - b.time);
    state.events = events.length;
    status.textContent = `${events.filter((e) => e.obj.type === "message").length} messages`;
    chapters();
    tick();
  } catch {
    status.textContent = "the chat could not be loaded";
  }
};

const source = video.dataset.src;
if (window.Hls && Hls.isSupported()) {
  hls = window.hls = new Hls({ enableWorker: true });
  hls.on(Hls.Events.LEVEL_LOADED, (event, data) => {
    const first = data.details.fragments[0];
    if (first && first.programDateTime) {
      startMs = first.programDateTime - first.start * 1000;
      chapters();
    }
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    if (data.fatal) {
      state.fatal = data.details;
      $("stats").textContent = `Playback failed: ${data.details}.`;
    }
  });
  hls.loadSource(source);
  hls.attachMedia(video);
} else if (video.canPlayType("application/vnd.apple.mpegurl")) {
  video.src = source;
  video.addEventListener("loadedmetadata", () => {
    const start = video.getStartDate ? video.getStartDate().getTime() : NaN;
    if (Number.isFinite(start)) startMs = start;
  });
} else {
  $("stats").textContent = "This browser cannot play HLS (no Media Source Extensions).";
}
video.addEventListener("seeked", tick);
setInterval(tick, 250);
loadChat();
