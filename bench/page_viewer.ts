/**
 * The status page open in headless Chromium during a benchmark run, as a
 * person watching would have it (pushed updates rendered as they come).
 *
 * @module
 */
import { type Browser, chromium } from "playwright-core";

/** Chromium with the status page open; counts the updates it rendered. */
export class PageViewer {
  #browser: Browser;
  #updates: () => Promise<number>;

  private constructor(browser: Browser, updates: () => Promise<number>) {
    this.#browser = browser;
    this.#updates = updates;
  }

  /** Open `url` in Debian's Chromium and wait until the page is live. */
  static async open(url: string): Promise<PageViewer> {
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox"],
    });
    const page = await browser.newPage();
    await page.addInitScript(() => {
      const w = globalThis as unknown as { __updates: number; EventSource: typeof EventSource };
      w.__updates = 0;
      const Original = w.EventSource;
      w.EventSource = class extends Original {
        constructor(url: string | URL, init?: EventSourceInit) {
          super(url, init);
          this.addEventListener("status", () => w.__updates++);
        }
      };
    });
    await page.goto(url);
    await page.locator("#conn", { hasText: "live" }).waitFor();
    return new PageViewer(
      browser,
      () => page.evaluate(() => (globalThis as unknown as { __updates: number }).__updates),
    );
  }

  /** Updates the page received so far. */
  updates(): Promise<number> {
    return this.#updates();
  }

  /** Close the browser. */
  async close(): Promise<void> {
    await this.#browser.close();
  }
}
