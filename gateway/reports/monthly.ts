import { type AlertKind, type AlertState, alertKinds, isEmergency } from "../alerts/model.ts";

/** One alert as a report reads it: when it opened, was first answered, closed, and how far it went. */
export interface ReportAlert {
  id: string;
  kind: AlertKind;
  subjectId: string;
  subjectName: string;
  deviceId: string;
  state: AlertState;
  openedAt: number;
  /**
   * When a responder first answered: accepted it, or closed it (resolved, false alarm). An alert
   * re-opened after it was forgotten keeps its first answer.
   */
  firstAnsweredAt: number | null;
  closedAt: number | null;
  /** Why a cancelled alert was closed: `false-alarm`, `device` (the resident), `superseded`. */
  closeReason: string | null;
  /** The highest escalation level paged; 0 when none was. */
  maxLevel: number;
}

export interface Month {
  /** `2026-11` */
  month: string;
  timeZone: string;
  from: number;
  to: number;
}

/** Milliseconds that `timeZone`'s wall clock is ahead of UTC at `t`. */
function zoneOffset(t: number, timeZone: string): number {
  const parts: Record<string, number> = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    })
      .formatToParts(t)
      .map((p) => [p.type, Number(p.value)]),
  );
  const { year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = parts;
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  return wall - Math.floor(t / 1000) * 1000;
}

/** The instant the wall clock of `timeZone` shows midnight of this day. */
function localMidnight(year: number, month0: number, day: number, timeZone: string): number {
  const guess = Date.UTC(year, month0, day);
  const first = guess - zoneOffset(guess, timeZone);
  // Once more, in case the zone's offset changes between the guess and the answer (summer time).
  return guess - zoneOffset(first, timeZone);
}

/** A calendar month on the community's wall clock: `from` inclusive, `to` exclusive. */
export function monthOf(month: string, timeZone: string): Month {
  const [year, m] = month.split("-").map(Number) as [number, number];
  return {
    month,
    timeZone,
    from: localMidnight(year, m - 1, 1, timeZone),
    to: localMidnight(year, m, 1, timeZone),
  };
}

/** `YYYY-MM-DD` and the hour of the day on the wall clock of `timeZone`. */
function wallClock(t: number, timeZone: string): { date: string; hour: number } {
  const local = new Date(t + zoneOffset(t, timeZone));
  return {
    date: local.toISOString().slice(0, 10),
    hour: local.getUTCHours(),
  };
}

/** Nearest-rank percentile of sorted values; null when there are none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;
const share = (part: number, whole: number) => (whole === 0 ? null : Math.round((part / whole) * 1000) / 10);

/** The telecare industry's targets for the share of calls answered within 60 s and 180 s. */
const answerTargetPercent = { within60s: 97.5, within180s: 99 } as const;

/** Whether `part` of `whole` met a target, unrounded; `met` is null when no call needed a person. */
const target = (part: number, whole: number, targetPercent: number) => ({
  targetPercent,
  met: whole === 0 ? null : part * 100 >= targetPercent * whole,
});

/** The Monday (`YYYY-MM-DD`) of the week a calendar day falls in. */
function mondayOf(date: string): string {
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7));
  return day.toISOString().slice(0, 10);
}

/** The Mondays of every week that holds a day of `month` (`YYYY-MM`), in order. */
function weeksOf(month: string): string[] {
  const [year, m] = month.split("-").map(Number) as [number, number];
  const days = new Date(Date.UTC(year, m, 0)).getUTCDate();
  const mondays = new Set<string>();
  for (let d = 1; d <= days; d++)
    mondays.add(mondayOf(new Date(Date.UTC(year, m - 1, d)).toISOString().slice(0, 10)));
  return [...mondays];
}

/** ISO 8601 week number of the week starting on this Monday: the week that holds its Thursday. */
export function isoWeekOf(monday: string): number {
  const thursday = new Date(`${monday}T00:00:00Z`);
  thursday.setUTCDate(thursday.getUTCDate() + 3);
  const yearStart = Date.UTC(thursday.getUTCFullYear(), 0, 1);
  return Math.floor((thursday.getTime() - yearStart) / 86_400_000 / 7) + 1;
}

/** Alerts someone had to answer: emergencies, unless the resident (or a newer call) withdrew them first. */
function neededAPerson(a: ReportAlert): boolean {
  if (!isEmergency(a.kind)) return false;
  const withdrawn = a.closeReason === "device" || a.closeReason === "superseded";
  return !(withdrawn && a.firstAnsweredAt === null);
}

/**
 * The response figures of one month: alerts by kind and hour, time to answer and to resolve,
 * the share answered within 60 s and 180 s (the telecare industry's targets: 97.5 % and 99 %),
 * escalations that reached level 3, and the hours devices were offline.
 */
export function monthlyReport(alerts: readonly ReportAlert[], m: Month, now: number) {
  const inMonth = alerts.filter((a) => a.openedAt >= m.from && a.openedAt < m.to);
  const byKind = Object.fromEntries(alertKinds.map((k) => [k, 0])) as Record<AlertKind, number>;
  const byHour = Object.fromEntries(alertKinds.map((k) => [k, new Array<number>(24).fill(0)])) as Record<
    AlertKind,
    number[]
  >;
  for (const a of inMonth) {
    byKind[a.kind] += 1;
    const hours = byHour[a.kind];
    const hour = wallClock(a.openedAt, m.timeZone).hour;
    hours[hour] = (hours[hour] ?? 0) + 1;
  }

  const needing = inMonth.filter(neededAPerson);
  const answerMs = (list: readonly ReportAlert[]) =>
    list
      .filter((a) => a.firstAnsweredAt !== null)
      .map((a) => (a.firstAnsweredAt as number) - a.openedAt)
      .sort((x, y) => x - y);
  const answers = answerMs(needing);
  const resolves = needing
    .filter((a) => a.state === "resolved" && a.closedAt !== null)
    .map((a) => (a.closedAt as number) - a.openedAt)
    .sort((x, y) => x - y);
  const within60 = answers.filter((ms) => ms <= 60_000).length;
  const within180 = answers.filter((ms) => ms <= 180_000).length;
  const pct = (values: number[], p: number) => {
    const v = percentile(values, p);
    return v === null ? null : seconds(v);
  };

  // ISO weeks (from Monday) on the community's wall clock, every one the month touches, so a
  // chart shows a quiet week as a gap rather than leaving it out.
  const weeks = new Map<string, ReportAlert[]>(weeksOf(m.month).map((w) => [w, []]));
  for (const a of needing) weeks.get(mondayOf(wallClock(a.openedAt, m.timeZone).date))?.push(a);

  const offline = alerts.filter((a) => a.kind === "device-offline");
  const offlineMs = offline.reduce(
    (sum, a) => sum + Math.max(0, Math.min(a.closedAt ?? now, m.to, now) - Math.max(a.openedAt, m.from)),
    0,
  );

  return {
    month: m.month,
    timeZone: m.timeZone,
    from: m.from,
    to: m.to,
    alerts: { total: inMonth.length, byKind, byHour },
    emergencies: {
      needingAPerson: needing.length,
      answered: answers.length,
      neverAnswered: needing.length - answers.length,
      answerSeconds: { p50: pct(answers, 50), p90: pct(answers, 90) },
      answeredWithin60sPercent: share(within60, needing.length),
      answeredWithin180sPercent: share(within180, needing.length),
      resolveSeconds: { p50: pct(resolves, 50), p90: pct(resolves, 90) },
      falseAlarms: inMonth.filter((a) => a.closeReason === "false-alarm").length,
    },
    targets: {
      answeredWithin60s: target(within60, needing.length, answerTargetPercent.within60s),
      answeredWithin180s: target(within180, needing.length, answerTargetPercent.within180s),
    },
    escalationsReachingLevel3: inMonth.filter((a) => a.maxLevel >= 3).length,
    weekly: [...weeks.entries()].map(([weekStart, list]) => {
      const w = answerMs(list);
      return {
        weekStart,
        isoWeek: isoWeekOf(weekStart),
        emergencies: list.length,
        answerSeconds: { p50: pct(w, 50), p90: pct(w, 90) },
      };
    }),
    devicesOffline: {
      devices: new Set(offline.map((a) => a.deviceId)).size,
      hours: Math.round(offlineMs / 36_000) / 100,
    },
  };
}
export type MonthlyReport = ReturnType<typeof monthlyReport>;

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? "" : String(v);
  // A cell a spreadsheet would run as a formula is kept as text.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
};

/** The month's alerts, one row each, for a spreadsheet: a BOM so Excel reads the Chinese names. */
export function alertsCsv(
  alerts: readonly ReportAlert[],
  m: Month,
  header: readonly string[],
  kindName: (k: AlertKind) => string,
): string {
  const at = (t: number | null) => {
    if (t === null) return "";
    const local = new Date(t + zoneOffset(t, m.timeZone)).toISOString();
    return `${local.slice(0, 10)} ${local.slice(11, 19)}`;
  };
  const rows = alerts
    .filter((a) => a.openedAt >= m.from && a.openedAt < m.to)
    .sort((x, y) => x.openedAt - y.openedAt)
    .map((a) => [
      a.id,
      kindName(a.kind),
      a.subjectName,
      a.deviceId,
      at(a.openedAt),
      a.firstAnsweredAt === null ? "" : seconds(a.firstAnsweredAt - a.openedAt),
      a.state === "resolved" && a.closedAt !== null ? seconds(a.closedAt - a.openedAt) : "",
      a.maxLevel,
      a.state,
      a.closeReason ?? "",
    ]);
  return `\uFEFF${[header, ...rows].map((r) => r.map(csvCell).join(",")).join("\r\n")}\r\n`;
}
