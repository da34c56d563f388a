import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame, parseContent, WatchFrameDecoder } from "../../gateway/protocols/watch/index.ts";
import { checkProperty, propertyTimeoutMs } from "./fuzz.ts";

const MAX = 512;

/** Feeds `stream` cut at `cuts`; returns what came out, or throws what the decoder threw. */
function feed(stream: Uint8Array, cuts: number[]) {
  const decoder = new WatchFrameDecoder(MAX);
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let oversized = false;
  let from = 0;
  for (const to of [...points, stream.length]) {
    const { frames, problems } = decoder.push(Buffer.from(stream.subarray(from, to)));
    from = to;
    for (const f of frames) {
      // Every frame's content is read without throwing, whatever its bytes.
      parseContent(f.content);
      out.push(`${f.maker}*${f.deviceId}*${f.index ?? ""}*${f.content.toString("hex")}`);
    }
    if (problems.some((p) => p.kind === "oversized")) oversized = true;
    // Memory per connection is bounded, whatever arrives.
    expect(decoder.buffered).toBeLessThanOrEqual(MAX);
  }
  return { out, oversized };
}

/** Byte streams made of real frames, garbage, brackets, escapes and stray separators. */
const piece = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc
    .constantFrom("[", "]", "*", ",", "}", "\x7d\x01", "\x7d\x09", "[3G*", "*0002*")
    .map((s) => Buffer.from(s, "latin1")),
  fc
    .tuple(
      fc.constantFrom("3G", "SG", "CS", "ZJ", "ab"),
      fc.stringMatching(/^(\d{10}|\d{15})$/),
      fc.option(fc.stringMatching(/^[0-9A-Fa-f]{4}$/), { nil: undefined }),
      fc.stringMatching(/^[A-Za-z0-9_,.:-]{1,80}$/),
    )
    .map(([maker, deviceId, index, content]) => encodeFrame({ maker, deviceId, index }, content)),
);
const stream = fc.array(piece, { maxLength: 20 }).map((parts) => new Uint8Array(Buffer.concat(parts)));

describe("watch frame decoder, any bytes", () => {
  it(
    "never throws, and reads the same frames however the stream is cut into segments",
    () => {
      checkProperty(
        "watch decoder segments",
        fc.record({ stream, cuts: fc.array(fc.nat(), { maxLength: 12 }) }),
        ({ stream, cuts }) => {
          const whole = feed(stream, []);
          const cut = feed(stream, cuts);
          // A frame over the limit closes the connection: what follows it is not compared.
          if (!whole.oversized && !cut.oversized) expect(cut.out).toEqual(whole.out);
        },
      );
    },
    propertyTimeoutMs(),
  );

  it(
    "never throws on random bytes",
    () => {
      checkProperty(
        "watch decoder random bytes",
        fc.record({ stream: fc.uint8Array({ maxLength: 2000 }), cuts: fc.array(fc.nat(), { maxLength: 8 }) }),
        ({ stream, cuts }) => {
          feed(stream, cuts);
        },
      );
    },
    propertyTimeoutMs(),
  );

  it(
    "every frame it is given whole comes out whole",
    () => {
      checkProperty(
        "watch decoder round trip",
        fc.array(fc.stringMatching(/^[A-Za-z0-9_,.:-]{1,100}$/), { minLength: 1, maxLength: 10 }),
        (contents) => {
          const bytes = Buffer.concat(
            contents.map((c) => encodeFrame({ maker: "3G", deviceId: "8800000015" }, c)),
          );
          const { frames, problems } = new WatchFrameDecoder(MAX).push(bytes);
          expect(problems).toEqual([]);
          expect(frames.map((f) => f.content.toString())).toEqual(contents);
        },
      );
    },
    propertyTimeoutMs(),
  );
});
