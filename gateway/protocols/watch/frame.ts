/**
 * Framing of the "watch" protocol (3G / SeTracker / Beesure) that off-the-shelf 4G watches and SOS
 * pendants speak over TCP: `[MM*ID*LLLL*CONTENT]`, where MM is a maker code, ID 10 or 15 digits,
 * LLLL the content's length in hex; some `ZJ` devices put a 4-hex index after the id.
 */

export interface WatchFrame {
  maker: string;
  deviceId: string;
  /** The `ZJ` variant's frame index, repeated in the answer. */
  index?: string;
  /** Unescaped: binary payloads carry `} [ ] , *` as `7D 01`..`7D 05`. */
  content: Buffer;
}

export type DecodeProblem = { kind: "malformed"; detail: string } | { kind: "oversized"; bytes: number };

const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const ESCAPE = 0x7d; // }
const escaped = [0x7d, 0x5b, 0x5d, 0x2c, 0x2a]; // } [ ] , *  as 7D 01..05

const header = /^([0-9A-Za-z]{2})\*(\d{10}|\d{15})\*(?:([0-9A-Fa-f]{4})\*)?([0-9A-Fa-f]{4})\*/;
export const watchIdPattern = /^(\d{10}|\d{15})$/;

/** The longest header: `SG*` + 15 digits + `*IIII*LLLL*`. */
const HEADER_MAX = 29;

/**
 * Cuts a TCP byte stream into frames, whatever the segments: split, merged, with garbage between
 * frames. A frame starts at a `[` followed by a header: a `[` in text content (a Wi-Fi network
 * named "TP-LINK_[5G]") is not a start. It ends where its declared length says when a `]` is
 * there, else at its first `]`: some firmware counts characters, not bytes. Bytes before a frame
 * are dropped; a frame longer than `maxFrameBytes` is reported (and dropped), and the caller
 * closes the connection. It never holds more than `maxFrameBytes`.
 */
export class WatchFrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: number) {}

  /** Frames completed by this chunk, in order, and what was wrong with the others. */
  push(chunk: Buffer): { frames: WatchFrame[]; problems: DecodeProblem[] } {
    const frames: WatchFrame[] = [];
    const problems: DecodeProblem[] = [];
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      const start = buf.indexOf(OPEN);
      if (start < 0) {
        buf = buf.subarray(buf.length);
        break;
      }
      buf = buf.subarray(start);
      const head = header.exec(buf.subarray(1, 1 + HEADER_MAX).toString("latin1"));
      if (!head) {
        const next = buf.indexOf(OPEN, 1);
        const close = buf.indexOf(CLOSE, 1);
        if (close >= 0 && (next < 0 || close < next)) {
          const body = buf.subarray(1, close);
          problems.push({
            kind: "malformed",
            detail: `not a watch frame header: ${JSON.stringify(body.subarray(0, 30).toString("latin1"))}`,
          });
          buf = buf.subarray(close + 1);
        } else if (next >= 0 || buf.length > HEADER_MAX) {
          // A stray `[`: the stream goes on at the next one.
          buf = buf.subarray(next >= 0 ? next : 1);
        } else break; // the header is still arriving
        continue;
      }
      const contentStart = 1 + head[0].length;
      const declaredEnd = contentStart + Number.parseInt(head[4] ?? "0", 16);
      const end = buf[declaredEnd] === CLOSE ? declaredEnd : buf.indexOf(CLOSE, contentStart);
      if (end < 0) {
        if (buf.length > this.maxFrameBytes) {
          // Never held beyond the limit, whether or not the caller closes the connection.
          problems.push({ kind: "oversized", bytes: buf.length });
          buf = buf.subarray(buf.length);
        }
        break;
      }
      const content = unescapeContent(buf.subarray(contentStart, end));
      buf = buf.subarray(end + 1);
      if (end + 1 > this.maxFrameBytes) problems.push({ kind: "oversized", bytes: end + 1 });
      else if (content.length === 0) problems.push({ kind: "malformed", detail: "empty content" });
      else {
        const [, maker = "", deviceId = "", index] = head;
        frames.push(index === undefined ? { maker, deviceId, content } : { maker, deviceId, index, content });
      }
    }
    // A copy: the kept bytes must not pin the (possibly large) chunk they came in.
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    return { frames, problems };
  }

  /** Bytes held while waiting for the end of a frame. */
  get buffered(): number {
    return this.pending.length;
  }
}

function unescapeContent(raw: Buffer): Buffer {
  if (!raw.includes(ESCAPE)) return raw;
  const out = Buffer.alloc(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i] as number;
    const code = raw[i + 1];
    if (byte === ESCAPE && code !== undefined && code >= 1 && code <= 5) {
      out[n++] = escaped[code - 1] as number;
      i++;
    } else out[n++] = byte;
  }
  return out.subarray(0, n);
}

/** One frame to the watch, e.g. `[3G*8800000015*0002*LK]`. */
export function encodeFrame(
  to: { maker: string; deviceId: string; index?: string },
  content: string,
): Buffer {
  const body = Buffer.from(content, "utf8");
  const length = body.length.toString(16).toUpperCase().padStart(4, "0");
  const index = to.index === undefined ? "" : `${to.index}*`;
  return Buffer.concat([
    Buffer.from(`[${to.maker}*${to.deviceId}*${index}${length}*`),
    body,
    Buffer.from("]"),
  ]);
}

/** Text for the watch's screen: `MESSAGE` takes it as UTF-16BE, in hex. */
export function utf16beHex(text: string): string {
  const le = Buffer.from(text, "utf16le");
  return Buffer.from(le).swap16().toString("hex").toUpperCase();
}
