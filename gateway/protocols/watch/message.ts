/**
 * The content of a watch frame, read into what the gateway needs. Pure: no clock, no I/O. Field
 * order follows the vendors' public protocol documents (the same that Traccar's `watch` serves).
 */

export interface Cell {
  mcc: number;
  mnc: number;
  lac: number;
  cid: number;
  rssi: number;
}
export interface AccessPoint {
  ssid: string;
  mac: string;
  rssi: number;
}

/** `UD*`, `UD2` and `AL*`: a position report (a fix, or only the cells and access points seen). */
export interface PositionReport {
  /** Device time in ms (the watch sends UTC), undefined when the date or time is unreadable. */
  ts: number | undefined;
  /** The watch's own verdict: `A` valid, `V` no fix. */
  fixValid: boolean;
  lat: number;
  lon: number;
  speedKmh: number;
  battery: number | undefined;
  /** 32 bits: alarms in the high 16, states in the low 16. */
  status: number;
  cells: Cell[];
  accessPoints: AccessPoint[];
  accuracy: number | undefined;
}

export type WatchMessage =
  | { type: "LK"; kind: "link"; battery: number | undefined; steps: number | undefined }
  | { type: string; kind: "position"; late: boolean; report: PositionReport }
  | { type: string; kind: "alarm"; report: PositionReport }
  | { type: string; kind: "health"; values: Record<string, number> }
  /** Everything else: answered if the watch waits for an answer, otherwise only noted. */
  | { type: string; kind: "other"; fields: string[] };

/** Frames the watch repeats until the server answers them with their type. */
const answered = new Set(["LK", "TKQ", "TKQ2", "CONFIG", "INIT", "bphrt", "heart", "oxygen", "btemp2"]);

/** The answer a frame of this type waits for, if any: `[MM*ID*LLLL*<type>]`. */
export function answerFor(type: string): string | undefined {
  if (type.startsWith("AL")) return "AL";
  // INIT is answered with the result: 1, accepted.
  if (type === "INIT") return "INIT,1";
  return answered.has(type) ? type : undefined;
}

/** Health readings: names of the numeric fields after the type, in order. */
const healthFields = new Map<string, string[]>([
  ["heart", ["heartRate"]],
  ["bphrt", ["systolic", "diastolic", "heartRate"]],
  ["oxygen", ["spo2"]],
  ["btemp2", ["mode", "bodyTempC"]],
]);

export function parseContent(content: Buffer): WatchMessage {
  // Text frames are ASCII or UTF-8 (SSIDs may hold Chinese); binary ones (voice, pictures) are
  // only ever noted, never read. Some pad Wi-Fi names with NUL, which PostgreSQL cannot store.
  const text = content.toString("utf8").replaceAll("\0", "");
  const fields = text.split(",");
  const type = fields[0] ?? "";
  const rest = fields.slice(1);
  if (type === "LK") return { type, kind: "link", battery: percent(rest[2]), steps: int(rest[0]) };
  if (type === "UD" || type === "UD_WCDMA" || type === "UD_LTE" || type === "UD2" || type === "UD3")
    return { type, kind: "position", late: type === "UD2", report: parseReport(rest) };
  if (type.startsWith("AL")) return { type, kind: "alarm", report: parseReport(rest) };
  const names = healthFields.get(type);
  if (names) {
    const values: Record<string, number> = {};
    names.forEach((name, i) => {
      const v = Number(rest[i]);
      if (rest[i] !== undefined && rest[i] !== "" && Number.isFinite(v)) values[name] = v;
    });
    return { type, kind: "health", values };
  }
  return { type, kind: "other", fields: rest.slice(0, 20) };
}

function parseReport(f: string[]): PositionReport {
  const cells: Cell[] = [];
  const accessPoints: AccessPoint[] = [];
  let i = 16;
  const cellCount = int(f[i++]) ?? 0;
  if (cellCount > 0) {
    i++; // timing advance
    const mcc = int(f[i++]) ?? 0;
    const mnc = int(f[i++]) ?? 0;
    for (let c = 0; c < Math.min(cellCount, 32) && i + 2 < f.length + 1; c++) {
      cells.push({ mcc, mnc, lac: int(f[i]) ?? 0, cid: int(f[i + 1]) ?? 0, rssi: int(f[i + 2]) ?? 0 });
      i += 3;
    }
  }
  const apCount = int(f[i++]) ?? 0;
  for (let a = 0; a < Math.min(apCount, 32) && i + 2 < f.length + 1; a++) {
    accessPoints.push({ ssid: f[i] ?? "", mac: f[i + 1] ?? "", rssi: int(f[i + 2]) ?? 0 });
    i += 3;
  }
  const lat = Number(f[3]) * (f[4] === "S" ? -1 : 1);
  const lon = Number(f[5]) * (f[6] === "W" ? -1 : 1);
  return {
    ts: dateTime(f[0], f[1]),
    fixValid: f[2] === "A",
    lat: Number.isFinite(lat) ? lat : 0,
    lon: Number.isFinite(lon) ? lon : 0,
    speedKmh: Number(f[7]) || 0,
    battery: percent(f[12]),
    status: Number.parseInt(f[15] ?? "", 16) >>> 0 || 0,
    cells,
    accessPoints,
    accuracy: positive(f[i]),
  };
}

/** `ddmmyy`, `hhmmss`, UTC. */
function dateTime(date: string | undefined, time: string | undefined): number | undefined {
  const d = /^(\d\d)(\d\d)(\d\d)$/.exec(date ?? "");
  const t = /^(\d\d)(\d\d)(\d\d)$/.exec(time ?? "");
  if (!d || !t) return undefined;
  const [day, month, year] = [Number(d[1]), Number(d[2]), 2000 + Number(d[3])];
  const ms = Date.UTC(year, month - 1, day, Number(t[1]), Number(t[2]), Number(t[3]));
  // Date.UTC rolls 32/13 or 24:60 over into the next day or month: such a time is unreadable.
  const back = new Date(ms);
  const same =
    back.getUTCDate() === day && back.getUTCMonth() === month - 1 && back.getUTCHours() === Number(t[1]);
  return same && Number(t[2]) < 60 && Number(t[3]) < 60 ? ms : undefined;
}

function int(s: string | undefined): number | undefined {
  if (s === undefined || !/^-?\d{1,12}$/.test(s.trim())) return undefined;
  return Number(s);
}

function percent(s: string | undefined): number | undefined {
  const n = int(s);
  return n !== undefined && n >= 0 && n <= 100 ? n : undefined;
}

function positive(s: string | undefined): number | undefined {
  const n = Number(s);
  return s !== undefined && s !== "" && Number.isFinite(n) && n >= 0 ? n : undefined;
}
