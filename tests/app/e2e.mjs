// End-to-end run of the web page in headless Debian chromium, driven by playwright-core.
// Usage: node tests/app/e2e.mjs URL HEADER DATA OUT_DIR
// Does what a person does (a bad upload, a real upload, analysis, attention and its head slider,
// 100 generated samples), saves a screenshot after each step into OUT_DIR and prints one JSON line
// of observations for tests/app/test_browser.py to check. Exits non-zero only when a step fails.
import { chromium } from "playwright-core";
import path from "node:path";

const [url, hea, dat, outDir] = process.argv.slice(2);
const result = { steps: [], consoleErrors: [], expectedErrors: [], offsite: [] };
const shot = async (page, name) => {
  const file = path.join(outDir, `${String(result.steps.length + 1).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.steps.push({ name, screenshot: file });
};
const updates = (id) => `Number(document.getElementById(${JSON.stringify(id)}).dataset.updates || 0)`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = null;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(60000);
  let expectingError = false;
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    (expectingError ? result.expectedErrors : result.consoleErrors).push(m.text());
  });
  page.on("pageerror", (e) => result.consoleErrors.push(`page error: ${e}`));
  page.on("request", (r) => { const u = r.url(); if (!u.startsWith(url) && !u.startsWith("data:")) result.offsite.push(u); });

  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status").textContent === "ready");
  result.plotlyLoaded = await page.evaluate(() => typeof window.Plotly === "object" && !!window.Plotly.newPlot);
  await shot(page, "page");

  // a header without its data file: a message on the page, not a broken page
  expectingError = true;
  await page.setInputFiles("#file-input", [hea]);
  await page.click("#upload-button");
  await page.waitForSelector("#load-message.error");
  result.badUploadMessage = await page.textContent("#load-message");
  expectingError = false;
  await shot(page, "bad-upload");

  // the real record: header and data file together
  await page.setInputFiles("#file-input", [hea, dat]);
  await page.click("#upload-button");
  await page.waitForFunction(`${updates("record-plot")} >= 1`);
  result.record = await page.evaluate(() => {
    const div = document.getElementById("record-plot");
    return { traces: div.data.length, points: div.data[0].x.length, info: document.getElementById("record-info").innerText,
             svgPaths: div.querySelectorAll("path.js-line").length };
  });
  await shot(page, "record");

  // analysis
  await page.click("#analyse-button");
  await page.waitForFunction(`${updates("beats-plot")} >= 1`);
  result.analysis = await page.evaluate(() => {
    const div = document.getElementById("beats-plot");
    const rhythm = document.getElementById("rhythm-plot"), trees = document.getElementById("trees-report-link");
    return { summary: document.getElementById("analysis-summary").innerText, beatMarkers: div.data[1].x.length,
             beatsNote: document.getElementById("beats-message").innerText, rhythmNote: document.getElementById("rhythm-message").innerText,
             hrPoints: document.getElementById("hr-plot").data[0].x.length,
             rhythmModels: rhythm.data.map((d) => d.name), rhythmBarmode: rhythm.layout.barmode,
             treesReport: trees.classList.contains("disabled") ? null : trees.getAttribute("href"),
             // the aami-ecg-trees markers: one trace per class present, its class in `meta`
             beatClasses: div.data.filter((d) => d.meta).map((d) => ({ cls: d.meta, name: d.name, markers: d.x.length,
                                                                        symbol: d.marker.symbol, hover: d.text[0] || "" })),
             showLegend: div.layout.showlegend, beatClassesNote: document.getElementById("beat-classes-message").innerText };
  });
  if (result.analysis.treesReport) {
    result.analysis.treesReportPage = await page.evaluate(async (href) => {
      const response = await fetch(href);
      return { status: response.status, text: (await response.text()).slice(0, 200) };
    }, result.analysis.treesReport);
  }
  await page.locator("#analyse").scrollIntoViewIfNeeded();
  await shot(page, "analysis");

  // attention, then the head slider
  await page.click("#explain-button");
  await page.waitForFunction(`${updates("attention-plot")} >= 1`);
  const attention = () => page.evaluate(() => {
    const div = document.getElementById("attention-plot");
    return { title: div.layout.title.text, weights: Array.from(div.data[1].marker.color), head: document.getElementById("head-value").textContent };
  });
  const before = await attention();
  await page.locator("#head-slider").fill("2");
  await page.waitForFunction(`${updates("attention-plot")} >= 2`);
  const after = await attention();
  result.attention = { before: before.title, after: after.title, headLabel: after.head, tokens: after.weights.length,
                       changed: before.weights.some((w, i) => w !== after.weights[i]) };
  result.similarityUpdates = await page.evaluate(() => Number(document.getElementById("similarity-plot").dataset.updates || 0));
  await page.click("#attr-button");
  await page.waitForFunction(`${updates("attr-plot")} >= 1`);
  result.attributions = await page.evaluate(() => ({ points: document.getElementById("attr-plot").data[2].y.length,
                                                     note: document.getElementById("attributions-message").innerText }));
  await page.locator("#explain").scrollIntoViewIfNeeded();
  await shot(page, "explain-head-2");

  // attention shift after fine-tuning, then the head slider redraws it too
  result.shift = { enabled: await page.evaluate(() => !document.getElementById("shift-button").disabled) };
  if (result.shift.enabled) {
    await page.click("#shift-button");
    await page.waitForFunction(`${updates("shift-plot")} >= 1`);
    const shift = () => page.evaluate(() => {
      const div = document.getElementById("shift-plot");
      return { names: div.data.slice(1).map((d) => d.name), finetuned: Array.from(div.data[2].y),
               layers: Array.from(document.getElementById("shift-layers-plot").data[0].y),
               note: document.getElementById("shift-message").innerText };
    });
    const first = await shift();
    await page.locator("#head-slider").fill("3");
    await page.waitForFunction(`${updates("shift-plot")} >= 2`);
    const second = await shift();
    Object.assign(result.shift, { names: first.names, layers: first.layers, note: second.note, points: first.finetuned.length,
                                  changed: first.finetuned.some((w, i) => w !== second.finetuned[i]) });
    await page.locator("#shift-plot").scrollIntoViewIfNeeded();
    await shot(page, "attention-shift");
  }

  // generation of 100 samples, streamed
  await page.fill("#gen-steps", "100");
  await page.click("#gen-button");
  await page.waitForFunction(() => document.getElementById("gen-plot").dataset.done === "1");
  result.generate = await page.evaluate(() => {
    const div = document.getElementById("gen-plot");
    return { generated: div.data[1].x.length, updates: Number(div.dataset.updates || 0), message: document.getElementById("gen-message").innerText,
             csv: document.getElementById("gen-csv").getAttribute("href") };
  });
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), result.generate.csv);
  result.generate.csvGeneratedRows = csv.split("\n").filter((l) => l.startsWith("generated,")).length;
  await page.locator("#generate").scrollIntoViewIfNeeded();
  await shot(page, "generate");
} catch (err) {
  failed = String(err && err.stack ? err.stack : err);
} finally {
  await browser.close();
}
result.failed = failed;
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
