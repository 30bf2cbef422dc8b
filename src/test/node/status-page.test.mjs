// The live status page in headless Chromium (run by StatusPageIT with node --test). ROLLOUT_URL:
// the server; CHROMIUM: the system browser, or empty for the one npm @sparticuz/chromium ships
// (packaged-chromium.mjs); ADMIN_KEY: for the weight push; SCREENSHOT: where the page's picture goes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { packagedChromium } from "./packaged-chromium.mjs";

const base = process.env.ROLLOUT_URL;
const json = async (path, body, headers = {}) => {
  const r = await fetch(base + path, body === undefined ? { headers } : {
    method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json", ...headers },
  });
  assert.equal(r.status, 200, path + ": " + (await r.clone().text()));
  return r.json();
};

test("the page loads, shows the model, and follows generations and a weight push", async () => {
  const model = (await json("/v1/models")).data[0].id;
  const executable = process.env.CHROMIUM ? { executablePath: process.env.CHROMIUM } : await packagedChromium();
  const browser = await chromium.launch({ ...executable, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base + "/");
    await page.waitForFunction((m) => document.getElementById("model-id").textContent === m, model, { timeout: 20_000 });
    assert.equal(await page.textContent("#phase"), "ready");
    const number = async (id) => Number((await page.textContent(id)).replace(/,/g, ""));
    const before = await number("#sampled-total");

    // a burst of generations: the counters and the chart move
    await Promise.all(Array.from({ length: 8 }, (_, i) =>
      json("/generate", { text: "Status page " + i, sampling_params: { max_new_tokens: 48, temperature: 0.8, ignore_eos: true } })));
    await page.waitForFunction((b) => Number(document.getElementById("sampled-total").textContent.replace(/,/g, "")) >= b + 8 * 48,
      before, { timeout: 20_000 });

    // a weight push: the version and the push history follow
    const info = await json("/get_model_info");
    await json("/update_weights_from_disk", { model_path: info.model_path, weight_version: "status-page-check" },
      { Authorization: "Bearer " + process.env.ADMIN_KEY });
    await page.waitForFunction(() => document.getElementById("weight-version").textContent === "status-page-check"
      && document.querySelector("#pushes td").textContent === "status-page-check", null, { timeout: 10_000 });
    assert.equal(await page.textContent("#rl-state"), "serving");
    assert.match(await page.textContent("#kv-detail"), /of [\d,]+ blocks of \d+ tokens/);
    // the chart has drawn something that is not background
    const inked = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > 150 && d[i] < 100) n++;  // the blue line
      return n;
    });
    assert.ok(inked > 50, "the throughput line is not drawn (" + inked + " blue pixels)");
    // the picture is taken under load: running sequences and KV use show
    const load = Promise.all(Array.from({ length: 16 }, (_, i) =>
      json("/generate", { text: "Under load " + i, sampling_params: { max_new_tokens: 160, temperature: 0.8, ignore_eos: true } })));
    await page.waitForFunction(() => Number(document.getElementById("running").textContent) > 0, null, { timeout: 10_000 });
    await page.waitForTimeout(2500);
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    await load;
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
