import { ApiError } from "./api.ts";
import { en, type MessageKey } from "./messages/en.ts";
import { zhCN } from "./messages/zh-CN.ts";

export type Locale = "zh-CN" | "en";
export const locales: { id: Locale; name: string }[] = [
  { id: "zh-CN", name: "中文" },
  { id: "en", name: "English" },
];
const catalogues: Record<Locale, Record<MessageKey, string>> = { en, "zh-CN": zhCN };
const STORAGE_KEY = "gateway.locale";

/** The remembered choice, else the browser's preference, else Chinese. */
function initialLocale(): Locale {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "zh-CN") return saved;
  return navigator.language.toLowerCase().startsWith("en") ? "en" : "zh-CN";
}

let locale: Locale = initialLocale();
const listeners = new Set<() => void>();

export const currentLocale = () => locale;

export function setLocale(next: Locale): void {
  locale = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
  for (const l of listeners) l();
}

export function onLocaleChange(listener: () => void): void {
  listeners.add(listener);
}

export const isMessageKey = (key: string): key is MessageKey => key in en;

export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  const text = catalogues[locale][key] ?? en[key];
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? ""));
}

export function formatTime(ms: number): string {
  return new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "medium" }).format(ms);
}

/** "Family and Grid worker" / "家属和网格员". */
export function formatList(items: string[]): string {
  return new Intl.ListFormat(locale, { style: "long", type: "conjunction" }).format(items);
}

/** "3 minutes ago" / "3 分钟前". */
export function formatAgo(ms: number, now = Date.now()): string {
  const seconds = Math.round((ms - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  const abs = Math.abs(seconds);
  if (abs < 60) return rtf.format(seconds, "second");
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 86_400) return rtf.format(Math.round(seconds / 3600), "hour");
  return rtf.format(Math.round(seconds / 86_400), "day");
}

export type { MessageKey };

/** What went wrong, in the reader's language: by the server's error code, never its English text. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    const key = `error.${err.code}`;
    return isMessageKey(key) ? t(key) : t("error.unknown");
  }
  // fetch() rejects with a TypeError when the gateway cannot be reached at all.
  if (err instanceof TypeError) return t("error.network");
  return t("error.unknown");
}
