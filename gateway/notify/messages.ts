import type { Logger } from "pino";
import type { FollowUpEvent } from "../alerts/decide.ts";
import type { AlertKind } from "../alerts/model.ts";
import type { EventMap } from "../bus/index.ts";
import type { Clock } from "../clock/index.ts";
import type { DeviceState, Store } from "../store/types.ts";
import { DEFAULT_LOCALE } from "./phrases.ts";

type Named = { id: string; name: string; role: string | null };

/**
 * What a notification says about its alert, whoever receives it: the alert; the resident (name,
 * address, phone); the device's battery, and for a tag its last position and how old it is; the
 * zone left; who else was told and who accepted; and a link to the alert on the dashboard.
 * The webhook carries it whole; the other channels say part of it in a sentence or two.
 */
export interface AlertSummary {
  event: EventMap["alert.notify"]["event"];
  alertId: string;
  kind: AlertKind;
  state: string;
  level: number;
  openedAt: string;
  presses: number;
  deviceId: string;
  unreached: boolean;
  exhausted: boolean;
  outcome: string | null;
  subject: { id: string; name: string; address: string | null; phone: string | null } | null;
  device: {
    battery: number | null;
    online: boolean;
    position: { lat: number; lon: number; accuracyM: number; at: string; ageSec: number } | null | undefined;
  } | null;
  /** For a geofence exit: the zone, metres beyond its edge, and how old the fix that said so is. */
  zone: { id: unknown; name: unknown; distanceM: unknown; fixAgeSec: number | null } | null;
  notified: Named[];
  acceptedBy: Named | null;
  link: string | null;
}

export async function summarize(
  deps: {
    store: Store;
    clock: Clock;
    log: Logger;
    deviceState?: (deviceId: string) => DeviceState | undefined;
  },
  n: EventMap["alert.notify"],
  publicUrl: string | null,
): Promise<AlertSummary> {
  const { alert } = n;
  const bare: AlertSummary = {
    event: n.event,
    alertId: alert.id,
    kind: alert.kind,
    state: alert.state,
    level: n.level,
    openedAt: new Date(alert.openedAt).toISOString(),
    presses: alert.presses,
    deviceId: alert.deviceId,
    unreached: alert.unreached,
    exhausted: alert.exhausted,
    outcome: alert.outcome,
    subject: null,
    device: null,
    zone: null,
    notified: [],
    acceptedBy: null,
    link: publicUrl ? `${publicUrl}/?alert=${alert.id}#alerts` : null,
  };
  const { store, clock, deviceState, log } = deps;
  try {
    // The people the decision read (its recipients, the subject) are not read again.
    const known = new Map([...n.recipients, ...(n.subject ? [n.subject] : [])].map((p) => [p.id, p]));
    const personOf = async (id: string) => known.get(id) ?? (await store.registry.getPerson(id));
    const nameOf = async (id: string): Promise<Named> => {
      const p = await personOf(id);
      return { id, name: p?.name ?? id, role: p?.role ?? null };
    };
    const subject = await personOf(alert.subjectId);
    // Only a geofence exit says more than the alert does: the zone, from the trail's first entry.
    const opened =
      alert.kind === "geofence-exit"
        ? (await store.alerts.events(alert.id)).find((e) => e.type === "opened")
        : undefined;
    const state = deviceState?.(alert.deviceId);
    const position = state?.position;
    return {
      ...bare,
      subject: subject
        ? { id: subject.id, name: subject.name, address: subject.address, phone: subject.phone }
        : null,
      device: state
        ? {
            battery: state.battery,
            online: state.online,
            position: position && {
              lat: position.lat,
              lon: position.lon,
              accuracyM: position.accuracy,
              at: new Date(position.ts).toISOString(),
              ageSec: Math.max(0, Math.round((clock.now() - position.ts) / 1000)),
            },
          }
        : null,
      zone: opened
        ? {
            id: opened.data.geofenceId,
            name: opened.data.geofence,
            distanceM: opened.data.distanceM,
            fixAgeSec:
              typeof opened.data.fixAt === "number"
                ? Math.max(0, Math.round((clock.now() - opened.data.fixAt) / 1000))
                : null,
          }
        : null,
      notified: await Promise.all(alert.notified.map(nameOf)),
      acceptedBy: alert.acceptedBy ? await nameOf(alert.acceptedBy) : null,
    };
  } catch (err) {
    // Who and where is worth having, not worth withholding the notification for.
    log.error({ err, alertId: alert.id }, "could not describe the alert: notifying without details");
    return bare;
  }
}

/** A notification said short: a title and one or two sentences, with the link to accept. */
export interface Message {
  title: string;
  text: string;
  link: string | null;
  /** Template parameters for SMS and voice, in the recipient's language. */
  params: { name: string; kind: string; address: string; level: string; status: string; link: string };
}

interface Wording {
  kinds: Record<AlertKind, string>;
  level: (n: number) => string;
  accept: string;
  paged: (name: string, kind: string, address: string, level: string) => string;
  /** Which zone, how far out, how old the fix: "离开「学校」约 120 米，定位于 2 分钟前". */
  zone: (name: string, distanceM: number, ageMin: number | null) => string;
  followUps: Record<FollowUpEvent, (name: string, kind: string, by: string) => string>;
}

const wordings: Record<string, Wording> = {
  "zh-CN": {
    kinds: {
      call: "一键呼叫",
      sos: "SOS求救",
      fall: "跌倒报警",
      "geofence-exit": "离开安全区",
      "device-offline": "设备离线",
      "low-battery": "电量低",
    },
    level: (n) => (n === 0 ? "兜底通知" : `第${n}级`),
    accept: "点此接单",
    paged: (name, kind, address, level) => `${name}${kind}（${level}）${address ? `，地址：${address}` : ""}`,
    zone: (name, distanceM, ageMin) =>
      `，离开「${name}」约 ${distanceM} 米${ageMin === null ? "" : `，定位于 ${ageMin} 分钟前`}`,
    followUps: {
      accepted: (name, kind, by) => `${name}的${kind}已由${by}接单`,
      resolved: (name, kind) => `${name}的${kind}已处理完毕`,
      cancelled: (name, kind) => `${name}的${kind}已取消`,
      reopened: (name, kind) => `${name}的${kind}未处理完，重新呼叫`,
      upgraded: (name, kind) => `${name}的呼叫已升级为${kind}`,
      reminder: (name, kind) => `请尽快处理${name}的${kind}`,
      "pressed-again": (name, kind) => `${name}再次发出${kind}`,
      "resident-ok": (name) => `${name}报平安`,
    },
  },
  en: {
    kinds: {
      call: "call",
      sos: "SOS",
      fall: "fall",
      "geofence-exit": "left safe zone",
      "device-offline": "device offline",
      "low-battery": "low battery",
    },
    level: (n) => (n === 0 ? "catch-all" : `level ${n}`),
    accept: "Accept",
    paged: (name, kind, address, level) => `${name}: ${kind} (${level})${address ? `, ${address}` : ""}`,
    zone: (name, distanceM, ageMin) =>
      `, ${distanceM} m outside ${name}${ageMin === null ? "" : `, fix ${ageMin} min old`}`,
    followUps: {
      accepted: (name, kind, by) => `${name}'s ${kind} was accepted by ${by}`,
      resolved: (name, kind) => `${name}'s ${kind} is resolved`,
      cancelled: (name, kind) => `${name}'s ${kind} was cancelled`,
      reopened: (name, kind) => `${name}'s ${kind} is open again`,
      upgraded: (name, kind) => `${name}'s call is now ${kind}`,
      reminder: (name, kind) => `Please resolve ${name}'s ${kind}`,
      "pressed-again": (name, kind) => `${name} sent another ${kind}`,
      "resident-ok": (name) => `${name} says they are fine`,
    },
  },
};

/** The recipient's language, or its base language (en-GB: en), or Chinese. */
const wordingFor = (locale: string): Wording =>
  wordings[locale] ?? wordings[locale.split("-")[0] ?? ""] ?? (wordings[DEFAULT_LOCALE] as Wording);

/** An alert kind's name in `locale` ("一键呼叫", "call"). */
export const alertKindName = (kind: AlertKind, locale: string): string => wordingFor(locale).kinds[kind];

/** The notification in the recipient's language. */
export function compose(about: AlertSummary, locale: string): Message {
  const w = wordingFor(locale);
  const name = about.subject?.name ?? about.deviceId;
  const kind = w.kinds[about.kind];
  const address = about.subject?.address ?? "";
  const level = w.level(about.level);
  const zone = about.zone;
  const where =
    zone && typeof zone.name === "string" && typeof zone.distanceM === "number"
      ? w.zone(zone.name, zone.distanceM, zone.fixAgeSec === null ? null : Math.round(zone.fixAgeSec / 60))
      : "";
  const status =
    about.event === "paged"
      ? w.paged(name, kind, address, level) + where
      : w.followUps[about.event](name, kind, about.acceptedBy?.name ?? "");
  return {
    title: `${kind} · ${name}`,
    text: status,
    link: about.link,
    params: { name, kind, address, level, status, link: about.link ?? "" },
  };
}

/** The notification for a group robot: the title, the sentence, and a link to accept on pages. */
export function markdownOf(m: Message, about: AlertSummary, locale: string): string {
  const { accept } = wordingFor(locale);
  const link =
    m.link && about.event === "paged" ? `\n\n[${accept}](${m.link})` : m.link ? `\n\n${m.link}` : "";
  return `### ${m.title}\n${m.text}${link}`;
}
