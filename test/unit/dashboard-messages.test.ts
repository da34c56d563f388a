import { describe, expect, it } from "vitest";
import { en } from "../../dashboard/src/messages/en.ts";
import { zhCN } from "../../dashboard/src/messages/zh-CN.ts";
import { Errors, type GatewayError } from "../../gateway/errors.ts";

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("the dashboard's message catalogues", () => {
  it("have no English left in any Chinese message", () => {
    // Names Chinese text writes in Latin letters too: the protocol a device manual names, 4G.
    const properNames = /\{\w+\}|MQTT|4G/g;
    const english = Object.entries(zhCN).filter(([, text]) => /[A-Za-z]/.test(text.replace(properNames, "")));
    expect(english).toEqual([]);
  });

  it("fill in the same values in both languages", () => {
    const differ = Object.keys(en).filter(
      (key) =>
        placeholders(en[key as keyof typeof en]).join() !== placeholders(zhCN[key as keyof typeof en]).join(),
    );
    expect(differ).toEqual([]);
  });

  it("translate every error code the gateway can answer with", () => {
    // Each factory with placeholder arguments: only the code matters here.
    const codes = Object.values(Errors).map(
      (make) => (make as (...a: unknown[]) => GatewayError)("x", "y", "z").code,
    );
    expect(codes.length).toBeGreaterThan(10);
    const missing = codes.filter((code) => !(`error.${code}` in en));
    expect(missing).toEqual([]);
  });
});
