// The chat pages in headless Chromium (the system's, driven by playwright-core), as people
// use them: a viewer on the watch page, the creator in the studio, OBS's overlay. Prints what
// happened as one JSON document on stdout; tests/test_chat_browser.py judges it.
//
//   node tests/browser/chat.mjs --chromium /usr/bin/chromium --base http://127.0.0.1:PORT
//        --stream cam --key KEY [--screenshots DIR]
//   node tests/browser/chat.mjs --chromium /usr/bin/chromium --base http://127.0.0.1:PORT
//        --replay /recordings/cam/<started>/ --seconds 8 [--screenshots DIR]
//
// The second form plays a recording's replay page from the start and samples, every 250 ms,
// the video's program date and the chat messages shown.
//
// The key is read from the environment variable GOLIVE_STUDIO_KEY when --key is not given
// (the test passes it that way, so it is in no process list).
//
// Each person has a browser context of their own (own cookies, own localStorage). A step
// that does not happen in time fails the run: the JSON then names the step, and the pages'
// console is in it.
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at < 0 ? fallback : args[at + 1];
};
const executablePath = option("--chromium", "/usr/bin/chromium");
const base = option("--base", "http://127.0.0.1:8080");
const stream = option("--stream", "cam");
const key = option("--key", process.env.GOLIVE_STUDIO_KEY || "");
const screenshots = option("--screenshots", "");
const replay = option("--replay", "");
const seconds = Number(option("--seconds", "8"));
const PAYLOAD = "<img src=x onerror=alert(1)>";
const WAIT = 15000;

const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];
const browser = await chromium.launch({ executablePath, headless: true, args: flags });
const result = { steps: [], console: [], dialogs: [], ok: false };
let step = "start";
const pages = {};

const open = async (who, path, viewport = { width: 1280, height: 800 }) => {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      result.console.push(`${who} ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => result.console.push(`${who} pageerror: ${error.message}`));
  // An alert would mean a chat message ran as HTML: record it (and dismiss it).
  page.on("dialog", async (dialog) => {
    result.dialogs.push(`${who}: ${dialog.type()} ${dialog.message()}`);
    await dialog.dismiss();
  });
  await page.goto(base + path, { waitUntil: "load", timeout: WAIT });
  pages[who] = page;
  return page;
};
const done = (name, detail = {}) => result.steps.push({ step: name, ...detail });
const shoot = async (page, name, options = {}) => {
  if (screenshots) await page.screenshot({ path: join(screenshots, `${name}.png`), ...options });
};
// The texts of a page's chat messages, as the page shows them.
const textsOf = (nodes) => nodes.map((n) => n.textContent);
const texts = (page) => page.$$eval("#messages li .text", textsOf);

const playReplay = async () => {
  step = "the replay page plays the recording";
  const page = await open("replay", replay);
  await page.waitForFunction(() => window.golive && window.golive.replay
    && window.golive.replay.events > 0 && window.hls && window.hls.levels.length > 0,
  null, { timeout: WAIT });
  await page.evaluate(() => {
    const video = document.getElementById("video");
    video.muted = true;
    return video.play();
  });
  result.samples = [];
  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    result.samples.push(await page.evaluate(() => ({
      currentTime: document.getElementById("video").currentTime,
      playingDate: window.golive.replay.playingDate,
      texts: [...document.querySelectorAll("#messages li")].map((n) => n.textContent),
      pinned: document.getElementById("pinned").hidden ? null
        : document.querySelector("#pinned .text").textContent,
    })));
    if (result.samples.length === 12) await shoot(page, "replay");
    await page.waitForTimeout(250);
  }
  result.chapters = await page.$$eval("#chapters button span:last-child", textsOf);
  done(step);
};

const chatScenario = async () => {
  step = "the creator signs in through the studio's form";
  const studio = await open("creator", `/studio/${stream}`, { width: 1400, height: 900 });
  await studio.fill("input[name=key]", key);
  await Promise.all([studio.waitForURL(`**/studio/${stream}`), studio.click("form.signin button")]);
  result.studioUrl = studio.url();
  await studio.waitForFunction(() => window.golive && window.golive.studio
    && window.golive.studio.connected && window.golive.studio.role === "creator",
  null, { timeout: WAIT });
  done(step);

  step = "the overlay joins to watch";
  const overlay = await open("overlay", `/overlay/${stream}`, { width: 1280, height: 720 });
  await overlay.waitForFunction(() => window.golive && window.golive.overlay
    && window.golive.overlay.connected, null, { timeout: WAIT });
  done(step);

  step = "the viewer joins with a name";
  const viewer = await open("viewer", `/watch/${stream}`);
  await viewer.waitForSelector("#join-form:not([hidden])", { timeout: WAIT });
  await viewer.fill("#join-form input[name=name]", "Ada");
  await viewer.click("#join-form button");
  await viewer.waitForFunction(() => window.golive.chat.user
    && window.golive.chat.user.name === "Ada", null, { timeout: WAIT });
  result.remembered = await viewer.evaluate(() => localStorage.getItem("golive.chat.name"));
  done(step);

  step = "a reload joins again by itself, as the same user";
  const userId = await viewer.evaluate(() => window.golive.chat.user.id);
  await viewer.reload({ waitUntil: "load" });
  await viewer.waitForFunction(() => window.golive.chat && window.golive.chat.user,
    null, { timeout: WAIT });
  result.sameUser = (await viewer.evaluate(() => window.golive.chat.user.id)) === userId;
  done(step);

  step = "the viewer writes, HTML included";
  for (const text of ["Hello from Ada!", PAYLOAD]) {
    await viewer.fill("#send-form input[name=text]", text);
    await viewer.press("#send-form input[name=text]", "Enter");
  }
  await viewer.waitForFunction((payload) => [...document.querySelectorAll("#messages .text")]
    .some((n) => n.textContent === payload), PAYLOAD, { timeout: WAIT });
  result.viewerTexts = await texts(viewer);
  result.viewerImages = await viewer.$$eval("#messages img", (nodes) => nodes.length);
  done(step);

  step = "the creator sees the messages, shown as text";
  await studio.waitForFunction((payload) => [...document.querySelectorAll("#messages .text")]
    .some((n) => n.textContent === payload), PAYLOAD, { timeout: WAIT });
  result.studioTexts = await texts(studio);
  result.studioImages = await studio.$$eval("#messages img", (nodes) => nodes.length);
  await overlay.waitForFunction((payload) => [...document.querySelectorAll("#messages .text")]
    .some((n) => n.textContent === payload), PAYLOAD, { timeout: WAIT });
  result.overlayTexts = await texts(overlay);
  done(step);

  step = "the viewer reacts";
  for (let i = 0; i < 5; i += 1) await viewer.click("#reactions button[data-kind=heart]");
  await viewer.waitForFunction(() => {
    const count = document.querySelector("#reactions button[data-kind=heart] .count");
    return count && Number(count.textContent) >= 5;
  }, null, { timeout: WAIT });
  result.hearts = await viewer.textContent("#reactions button[data-kind=heart] .count");
  done(step);

  step = "the viewer asks and the creator answers";
  await viewer.check("#send-form input[name=mode][value=ask]");
  await viewer.fill("#send-form input[name=text]", "Which camera is that?");
  await viewer.press("#send-form input[name=text]", "Enter");
  result.modeAfterAsking = await viewer.$eval("#send-form", (form) => form.elements.mode.value);
  const question = studio.locator("#questions li", { hasText: "Which camera is that?" });
  await question.waitFor({ timeout: WAIT });
  await question.locator("button[data-action=answer]").click();
  await viewer.waitForSelector("#answering:not([hidden])", { timeout: WAIT });
  await overlay.waitForSelector("#answering:not([hidden])", { timeout: WAIT });
  result.answering = await viewer.textContent("#answering .text");
  await viewer.waitForFunction(() => document.querySelector("#messages li.question .badge")
    .textContent === "being answered", null, { timeout: WAIT });
  done(step);

  step = "the viewer sends a gift and the overlay shows it";
  await viewer.waitForSelector("#gift-button:not([hidden])", { timeout: WAIT });
  await viewer.click("#gift-button");
  await viewer.fill("#gift-count", "3");
  await shoot(viewer, "watch-gifts");
  await viewer.click("#gift-list button[data-gift=rose]");
  await overlay.waitForSelector(".alert", { timeout: WAIT });
  result.alert = await overlay.textContent(".alert .alert-text");
  await overlay.waitForTimeout(700);  // past its pop-in animation
  await shoot(overlay, "overlay", { omitBackground: true });
  if (screenshots) {  // and as OBS would show it: over the stream's picture
    await overlay.evaluate((path) => {
      document.documentElement.style.background = `#234 url(${path}) center / cover`;
    }, `/live/${stream}/thumbnail.jpg`);
    await shoot(overlay, "overlay-over-video");
  }
  await studio.waitForFunction(() => document.querySelectorAll("#gifts-received li").length > 0,
    null, { timeout: WAIT });
  result.supporters = await studio.textContent("#supporters");
  done(step);

  step = "the creator adds a marker";
  await studio.fill("#marker-form input[name=label]", "Unboxing starts");
  await studio.press("#marker-form input[name=label]", "Enter");
  await studio.waitForSelector("#markers li", { timeout: WAIT });
  done(step);

  await shoot(viewer, "watch");
  await studio.waitForFunction(() => window.golive.studio.health
    && window.golive.studio.health.state === "live", null, { timeout: WAIT });
  await shoot(studio, "studio");

  step = "the creator deletes the message and the viewer sees it go";
  const item = studio.locator("#messages li.message", { hasText: PAYLOAD });
  await item.locator("button[data-action=delete]").click();
  await viewer.waitForFunction((payload) => ![...document.querySelectorAll("#messages .text")]
    .some((n) => n.textContent === payload), PAYLOAD, { timeout: WAIT });
  await overlay.waitForFunction((payload) => ![...document.querySelectorAll("#messages .text")]
    .some((n) => n.textContent === payload), PAYLOAD, { timeout: WAIT });
  result.viewerTextsAfter = await texts(viewer);
  result.studioTextsAfter = await texts(studio);
  done(step);

  step = "the creator looks at Ada's messages";
  const hello = studio.locator("#messages li.message", { hasText: "Hello from Ada!" });
  await hello.locator("button[data-action=history]").click();
  await studio.waitForFunction(() => document.querySelectorAll("#user-messages li .text")
    .length >= 1, null, { timeout: WAIT });
  result.history = await studio.$$eval("#user-messages li", (nodes) => nodes.map(
    (n) => ({ text: n.querySelector(".text").textContent, deleted: n.className === "deleted" })));
  done(step);

  const viewerNotice = (text) => viewer.waitForFunction((wanted) => window.golive.chat.notices
    .some((n) => n.includes(wanted)), text, { timeout: WAIT });

  step = "slow mode: the viewer's second message waits";
  await studio.selectOption("#slow-mode", "30");
  await viewer.waitForFunction(() => document.getElementById("chat-rules").textContent
    .includes("Slow mode: one message every 30 s"), null, { timeout: WAIT });
  for (const text of ["one", "two"]) {
    await viewer.fill("#send-form input[name=text]", text);
    await viewer.press("#send-form input[name=text]", "Enter");
  }
  await viewerNotice("Slow mode is on. Wait ");
  await studio.selectOption("#slow-mode", "0");
  await viewer.waitForSelector("#chat-rules[hidden]", { state: "attached", timeout: WAIT });
  done(step);

  step = "the word filter refuses a word the creator added";
  await studio.fill("#filter-form input[name=word]", "spoiler");
  await studio.press("#filter-form input[name=word]", "Enter");
  await studio.locator("#filter-words li", { hasText: "spoiler" }).waitFor({ timeout: WAIT });
  await viewer.fill("#send-form input[name=text]", "big spoiler ahead");
  await viewer.press("#send-form input[name=text]", "Enter");
  await viewerNotice("a word this chat does not allow");
  done(step);

  step = "a time-out, then a ban: the viewer is told and stays out";
  await hello.locator("button[data-action=timeout]").click();
  await viewerNotice("A moderator timed you out for 5 min.");
  await hello.locator("button[data-action=ban]").click();
  await viewer.waitForFunction(() => window.golive.chat.final === "banned", null,
    { timeout: WAIT });
  await studio.locator("#banned li", { hasText: "Ada" }).waitFor({ timeout: WAIT });
  await viewer.waitForTimeout(2500);  // long past the first reconnection's backoff
  result.banned = await viewer.evaluate(() => ({
    connected: window.golive.chat.connected, final: window.golive.chat.final,
    sendHidden: document.getElementById("send-form").hidden,
    notices: window.golive.chat.notices,
  }));
  result.studioTextsBanned = await texts(studio);
  result.viewerTextsBanned = await texts(viewer);
  await shoot(studio, "studio-moderated");
  done(step);

  step = "a narrow screen puts the chat below the video";
  await viewer.setViewportSize({ width: 420, height: 900 });
  const [video, chat] = await Promise.all(["#video", "#chat"].map(
    (selector) => viewer.locator(selector).boundingBox()));
  result.narrow = { videoBottom: video.y + video.height, chatTop: chat.y };
  await shoot(viewer, "watch-narrow", { fullPage: true });
  done(step);
};

try {
  await (replay ? playReplay() : chatScenario());
  result.ok = true;
} catch (error) {
  result.failed = step;
  result.error = String(error && error.message ? error.message : error).slice(0, 2000);
  for (const [who, page] of Object.entries(pages)) {
    try { await shoot(page, `failed-${who}`); } catch { /* the page is gone */ }
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
