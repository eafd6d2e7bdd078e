// Plays golive watch pages in headless Chromium (the system's, driven by playwright-core) and
// prints what each page measured as one JSON document on stdout.
//
//   node tests/browser/play.mjs --chromium /usr/bin/chromium --seconds 10
//        [--switch 2 [--switch-from 3]] [--screenshots DIR] URL...
//
// Pages play one after another in one browser. Every 250 ms the script samples the page's
// `window.golive` state and the <video> element; tests/test_browser.py judges the samples.
// With --switch S, every S seconds the player is told to go to the next rendition at its
// next segment (hls.nextLevel), as its bandwidth estimate would on a changing network.
// With --screenshots DIR, each page's last look is saved there as page-N.png.
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
const seconds = Number(option("--seconds", "10"));
const switchEvery = Number(option("--switch", "0"));
const switchFrom = Number(option("--switch-from", "0"));  // seconds after the page opens
const screenshots = option("--screenshots", "");
const urls = args;

// Without the background-networking flags Chromium waits on services a closed network never
// answers. Autoplay needs no gesture here; the page's video is muted anyway.
const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];
const profile = mkdtempSync(join(tmpdir(), "golive-chromium-"));
const sample = () => {
  const video = document.querySelector("video");
  const g = window.golive || {};
  return {
    currentTime: video ? video.currentTime : null,
    paused: video ? video.paused : null,
    playbackRate: video ? video.playbackRate : null,
    frames: g.frames ?? null, dropped: g.dropped ?? null, stalls: g.stalls ?? null,
    latency: window.hls ? window.hls.latency : null,
    targetLatency: window.hls ? window.hls.targetLatency : null,
    // Since the server received the frame now on screen: its PROGRAM-DATE-TIME is the
    // arrival time (same clock here, on loopback).
    sinceIngest: window.hls && window.hls.playingDate
      ? (Date.now() - window.hls.playingDate.getTime()) / 1000 : null,
    buffer: g.buffer ?? null, errors: (g.errors || []).slice(), fatal: g.fatal ?? null,
    lowLatency: g.lowLatency ?? null, hls: Boolean(window.hls),
    level: window.hls ? window.hls.currentLevel : null,
    levels: window.hls ? window.hls.levels.length : 0,
    // What the page shows a viewer around the player.
    quality: [...document.querySelectorAll("#quality option")].map((o) => o.textContent),
    viewers: document.getElementById("viewers")?.textContent ?? null,
    uptime: document.getElementById("uptime")?.textContent ?? null,
    state: document.getElementById("state")?.textContent ?? null,
    ended: document.getElementById("ended")?.textContent ?? null,
  };
};
const nextLevel = () => {
  const hls = window.hls;
  if (!hls || hls.levels.length < 2 || hls.currentLevel < 0) return null;
  hls.nextLevel = (hls.currentLevel + 1) % hls.levels.length;
  return hls.nextLevel;
};

const results = [];
const context = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, args: flags, timeout: 30000,
});
try {
  for (const url of urls) {
    const page = await context.newPage();
    const console_ = [];
    page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => console_.push(`pageerror: ${error.message}`));
    const started = Date.now();
    await page.goto(url, { waitUntil: "load", timeout: 15000 });
    const samples = [];
    let switched = started + (switchFrom - switchEvery) * 1000;
    while (Date.now() - started < seconds * 1000) {
      samples.push({ t: (Date.now() - started) / 1000, ...(await page.evaluate(sample)) });
      if (switchEvery && Date.now() - switched >= switchEvery * 1000) {
        switched = Date.now();
        samples[samples.length - 1].asked = await page.evaluate(nextLevel);
      }
      await page.waitForTimeout(250);
    }
    results.push({ url, samples, console: console_.slice(-50) });
    if (screenshots) {
      await page.screenshot({ path: join(screenshots, `page-${results.length}.png`) });
    }
    await page.close();
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(results) + "\n");
