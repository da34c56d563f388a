import { type Browser, chromium, type Page } from "playwright-core";

/** Debian's Chromium, headless, with nothing reaching outside this machine. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
    ],
  });
}

/**
 * Every piece of text a reader meets on the page (text, labels, titles, placeholders, the window
 * title) that still holds Latin letters once the data shown (names, ids, addresses) is taken out.
 */
export async function englishOn(page: Page, data: string[]): Promise<string[]> {
  const parts = await page.evaluate(() => {
    const found = [document.title];
    for (const el of document.querySelectorAll("body *")) {
      if (el.tagName === "SCRIPT" || el.tagName === "STYLE") continue;
      for (const attr of ["aria-label", "title", "placeholder", "alt"]) {
        const value = el.getAttribute(attr);
        if (value) found.push(value);
      }
      for (const node of el.childNodes)
        if (node.nodeType === Node.TEXT_NODE) found.push(node.textContent ?? "");
    }
    return found;
  });
  // Longest first, so "btn-01" goes before "b".
  // "English" names the language switch's other choice; MQTT and 4G are written so in Chinese too.
  const known = [...data, "English", "MQTT", "4G"].sort((a, b) => b.length - a.length);
  return parts
    .map((p) => known.reduce((text, d) => text.split(d).join(""), p))
    .filter((p) => /[A-Za-z]/.test(p));
}
