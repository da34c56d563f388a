import { Duplex } from "node:stream";

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
 * The connection as aedes sees it: the transport's bytes pass the meter first, and a packet
 * announced as too long closes the transport before its body is read.
 */
export class PacketSizeGuard extends Duplex {
  constructor(
    private readonly transport: Duplex,
    maxBytes: number,
    onTooLong: (bytes: number) => void,
  ) {
    super();
    const meter = new PacketLengthMeter(maxBytes);
    transport.on("data", (chunk: Buffer) => {
      const tooLong = meter.feed(chunk);
      if (tooLong !== undefined) {
        onTooLong(tooLong);
        this.destroy();
      } else if (!this.push(chunk)) {
        transport.pause();
      }
    });
    transport.on("end", () => this.push(null));
    transport.on("error", (err) => this.destroy(err));
    transport.on("close", () => this.destroy());
  }

  override _read(): void {
    this.transport.resume();
  }

  /**
   * Hands each write straight to the socket, waiting only when it pushes back: waiting for every
   * write to flush would send a packet's header and body in separate TCP segments.
   */
  override _write(chunk: Buffer, encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.transport.write(chunk, encoding)) done();
    else this.transport.once("drain", () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.transport.end(done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.transport.destroy();
    done(err);
  }
}
