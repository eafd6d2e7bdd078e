// Glass-to-glass latency, read from the video itself: plays one golive watch page in headless
// Chromium (the system's, driven by playwright-core) and reads the frame index that
// bench/glass.py stamped into every picture, at the moment each frame is presented.
//
//   node tests/browser/glass.mjs --chromium /usr/bin/chromium --seconds 30 --stamp JSON URL
//
// requestVideoFrameCallback fires once per frame handed to the compositor; the callback draws
// the stamp band of that frame into a small canvas and decodes it. Each frame gives one row
//   [index or -1, presented (epoch ms), mediaTime, level, videoHeight, hls.latency, rate]
// where presented = performance.timeOrigin + metadata.expectedDisplayTime: the wall clock
// the frame is expected on screen, comparable with Python's time.time() on this machine.
// Prints one JSON document on stdout: the frames, the `waiting` events and the end state.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const [, value] = args.splice(at, 2);
  return value;
};
const executablePath = option("--chromium", "/usr/bin/chromium");
const seconds = Number(option("--seconds", "30"));
const stamp = JSON.parse(option("--stamp", "{}"));  // the stamp geometry, from glass.py
// hls.js settings laid over the watch page's own, to measure others than the defaults
const hlsConfig = JSON.parse(option("--hls-config", "{}"));
const [url] = args;

// The same flags as play.mjs: no background services a closed network never answers.
const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];

// Runs in the page. The stamp's geometry must match bench/glass.py: BITS columns, two rows
// (the bits, then their inverse) in the top BAND_ROWS/ROWS_PER_FRAME of the picture.
const install = ({ bits, rows, rowsPerFrame, payloadBits }) => {
  const CELL = 4;  // canvas pixels per block: its centre 2x2 is read
  const canvas = document.createElement("canvas");
  canvas.width = bits * CELL;
  canvas.height = rows * CELL;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const record = window.glass = { frames: [], waiting: [], reads: 0 };
  const video = document.querySelector("video");
  video.addEventListener("waiting", () => record.waiting.push(Date.now()));
  const checksum = (value) => {
    let sum = 0xA;
    for (let shift = 0; shift < payloadBits; shift += 4) sum ^= (value >> shift) & 0xF;
    return sum;
  };
  const decode = () => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return -1;
    context.drawImage(video, 0, 0, w, (h * rows) / rowsPerFrame, 0, 0, canvas.width,
                      canvas.height);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const bright = (column, row) => {
      let sum = 0;
      for (const dy of [1, 2]) {
        for (const dx of [1, 2]) {
          sum += pixels[((row * CELL + dy) * canvas.width + column * CELL + dx) * 4 + 1];
        }
      }
      return sum / 4;
    };
    let value = 0;
    for (let column = 0; column < bits; column++) {
      const on = bright(column, 0), off = bright(column, 1);
      if (Math.abs(on - off) < 64) return -1;  // not a clear black/white pair: no stamp
      if (on > off) value |= 1 << column;
    }
    const index = value & ((1 << payloadBits) - 1);
    return (value >> payloadBits) === checksum(index) ? index : -1;
  };
  const onFrame = (now, metadata) => {
    const hls = window.hls;
    record.frames.push([
      decode(), performance.timeOrigin + metadata.expectedDisplayTime, metadata.mediaTime,
      hls ? hls.currentLevel : null, video.videoHeight, hls ? hls.latency : null,
      video.playbackRate,
    ]);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
};

const finish = () => {
  const video = document.querySelector("video");
  const quality = video && video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const hls = window.hls;
  return {
    ...window.glass,
    dropped: quality ? quality.droppedVideoFrames : null,
    total: quality ? quality.totalVideoFrames : null,
    errors: (window.golive && window.golive.errors) || [],
    fatal: (window.golive && window.golive.fatal) || null,
    targetLatency: hls ? hls.targetLatency : null,
    levels: hls ? hls.levels.map((l) => l.height) : [],
  };
};

// Runs in the page before its scripts: when hls.js defines window.Hls, put a subclass there
// whose constructor lays `overrides` over the config the page passes.
const overrideHls = (overrides) => {
  let wrapped;
  Object.defineProperty(window, "Hls", {
    configurable: true,
    get: () => wrapped,
    set: (Hls) => {
      wrapped = class extends Hls {
        constructor(config) { super({ ...config, ...overrides }); }
      };
    },
  });
};

const profile = mkdtempSync(join(tmpdir(), "golive-chromium-"));
// bypassCSP: the watch page allows its own scripts only; this measuring script is ours.
const context = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, args: flags, timeout: 30000, bypassCSP: true,
});
let result;
try {
  const page = await context.newPage();
  if (Object.keys(hlsConfig).length) await page.addInitScript(overrideHls, hlsConfig);
  const console_ = [];
  page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => console_.push(`pageerror: ${error.message}`));
  const opened = Date.now();
  await page.goto(url, { waitUntil: "load", timeout: 15000 });
  await page.evaluate(install, stamp);
  await page.waitForTimeout(Math.max(0, seconds * 1000 - (Date.now() - opened)));
  result = { url, opened, ...(await page.evaluate(finish)), console: console_.slice(-30) };
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + "\n");
