import type { Schedule } from "./geofence.ts";

const weekdayNumber: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };
const formatters = new Map<string, Intl.DateTimeFormat>();

/** Whether the schedule is in force at `ts`, in the schedule's own time zone. */
export function isInForce(schedule: Schedule | null, ts: number): boolean {
  if (!schedule) return true;
  let format = formatters.get(schedule.timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-GB", {
      timeZone: schedule.timeZone,
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    formatters.set(schedule.timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(ts).map((p) => [p.type, p.value]));
  const day = weekdayNumber[parts.weekday ?? ""] ?? 0;
  const time = `${parts.hour}:${parts.minute}`;
  return schedule.windows.some((w) => w.days.includes(day) && w.from <= time && time < w.to);
}
