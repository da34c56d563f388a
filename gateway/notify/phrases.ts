import { z } from "zod";
import type { DevicePhrase } from "../alerts/decide.ts";

/** What a device may show or say: short fixed phrases per language; `{name}` is the accepter's name. */
export const phraseSetSchema = z.strictObject({
  received: z.string().min(1).max(120),
  accepted: z.string().min(1).max(120).includes("{name}", { message: "must name the accepter as {name}" }),
  resolved: z.string().min(1).max(120),
  cancelled: z.string().min(1).max(120),
});
export type PhraseSet = z.infer<typeof phraseSetSchema>;

export const localeTag = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;

/** A catalogue file adds languages or rewords these, language by language. */
export const phraseCatalogueSchema = z.record(z.string(), phraseSetSchema).superRefine((catalogue, ctx) => {
  for (const locale of Object.keys(catalogue))
    if (!localeTag.test(locale))
      ctx.addIssue({ code: "custom", path: [locale], message: "must be a language tag such as zh-CN or en" });
});
export type PhraseCatalogue = Record<string, PhraseSet>;

export const DEFAULT_LOCALE = "zh-CN";

export const builtInPhrases: PhraseCatalogue = {
  "zh-CN": {
    received: "已收到呼叫，正在联系医生",
    accepted: "{name}已接单，正在赶来",
    resolved: "呼叫已处理完毕",
    cancelled: "呼叫已取消",
  },
  en: {
    received: "Call received, contacting your doctor",
    accepted: "{name} accepted and is on the way",
    resolved: "Your call has been handled",
    cancelled: "Your call was cancelled",
  },
};

/** The phrase in the resident's language, or in Chinese when the catalogue lacks it. */
export function devicePhrase(
  catalogue: PhraseCatalogue,
  locale: string,
  key: DevicePhrase,
  name = "",
): string {
  const set = catalogue[locale] ?? catalogue[DEFAULT_LOCALE] ?? builtInPhrases[DEFAULT_LOCALE];
  return (set as PhraseSet)[key].replace("{name}", name);
}
