import type { Duplex } from "node:stream";

/** MQTT's largest remaining length (268,435,455) plus its 5-byte fixed header. */
export const MQTT_MAX_PACKET = 268_435_460;

/**
 * Follows the MQTT fixed headers in a byte stream and spots a packet longer than `maxBytes` as
 * soon as its remaining length says so. mqtt-packet has no limit: it would buffer a packet of
 * 256 MB whole before aedes saw it.
 */
class PacketLengthMeter {
  private reading: "type" | "length" | "body" = "type";
  private length = 0;
  private lengthBytes = 0;
  private bodyLeft = 0;

  constructor(private readonly maxBytes: number) {}

  /** Returns the announced size of the first packet over the limit, or undefined. */
  feed(chunk: Buffer): number | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.reading === "body") {
        const n = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= n;
        i += n;
        if (this.bodyLeft === 0) this.reading = "type";
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.reading === "type") {
        this.reading = "length";
        this.length = 0;
        this.lengthBytes = 0;
        continue;
      }
      // Remaining length: 7 bits a byte, least significant first, high bit = more to come.
      this.length += (byte & 0x7f) * 128 ** this.lengthBytes++;
      if (byte & 0x80) {
        // MQTT has at most four length bytes; a fifth would announce more than any limit.
        if (this.lengthBytes === 4) return Number.POSITIVE_INFINITY;
        continue;
      }
      const bytes = 1 + this.lengthBytes + this.length;
      if (bytes > this.maxBytes) return bytes;
      this.bodyLeft = this.length;
      this.reading = this.length > 0 ? "body" : "type";
    }
    return undefined;
  }
}

/**
 * Meters the bytes aedes reads from the transport (it reads with `read()` when the transport is
 * readable): a packet announced as too long closes the transport before its body is read. The
 * transport itself is what aedes gets: no stream in between, to allocate per connection or to
 * pass every chunk through.
 */
export function guardPacketSize(
  transport: Duplex,
  maxBytes: number,
  onTooLong: (bytes: number) => void,
): void {
  const meter = new PacketLengthMeter(maxBytes);
  const read = transport.read.bind(transport);
  transport.read = (size?: number) => {
    const chunk: Buffer | null = read(size);
    if (chunk === null) return null;
    const tooLong = meter.feed(chunk);
    if (tooLong === undefined) return chunk;
    onTooLong(tooLong);
    transport.destroy();
    return null;
  };
}
