// Drives tlm serve's page in headless Chromium (Debian's, over the DevTools protocol): loads it,
// types a text, clicks Classify, waits for the bars, and prints what the page shows as JSON
// (every model's title and bars: label, width in pixels, value shown; the time line), after
// saving a screenshot.
// Usage: node serve_page.js URL CHROMIUM TEXT OUT.png
const puppeteer = require("puppeteer-core");

(async () => {
  const [url, chromium, text, png] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1000, height: 700 });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: "networkidle0", timeout: 30000 });
    await page.waitForFunction(() => document.getElementById("about").textContent.includes("labels"), { timeout: 30000 });
    await page.type("#text", text);
    await page.click("#go");
    await page.waitForSelector("#out .model .row", { timeout: 30000 });
    const shown = await page.$$eval("#out .model", (models) =>
      models.map((m) => ({
        title: m.querySelector("h3").textContent,
        bars: [...m.querySelectorAll(".row")].map((r) => ({
          label: r.dataset.label,
          width: r.querySelector(".bar").getBoundingClientRect().width,
          value: r.querySelector(".value").textContent,
        })),
      })),
    );
    const time = await page.$eval("#time", (e) => e.textContent);
    const about = await page.$eval("#about", (e) => e.textContent);
    await page.screenshot({ path: png });
    console.log(JSON.stringify({ about, models: shown, time, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
