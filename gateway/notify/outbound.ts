import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";

/** Ranges no notification may reach unless an operator allows them: this machine and its networks. */
const internal = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], // "this network", 0.0.0.0
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const)
  internal.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const)
  internal.addSubnet(net, prefix, "ipv6");

/** One `OUTBOUND_ALLOW` entry: a host name, an address, or a CIDR range; undefined if it is none. */
export function parseAllowEntry(
  entry: string,
): { host: string } | { address: string; prefix: number | undefined; family: "ipv4" | "ipv6" } | undefined {
  const [address = "", prefix] = entry.split("/");
  const version = isIP(address);
  if (version === 0)
    return prefix === undefined && /^[a-z0-9.-]+$/i.test(address)
      ? { host: address.toLowerCase() }
      : undefined;
  const max = version === 6 ? 128 : 32;
  if (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) <= max)) return undefined;
  return {
    address,
    prefix: prefix === undefined ? undefined : Number(prefix),
    family: version === 6 ? "ipv6" : "ipv4",
  };
}

/** The addresses and ranges among allow-list entries, as one list to check addresses against. */
export function addressesOf(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const allowed = parseAllowEntry(entry);
    if (!allowed || "host" in allowed) continue;
    if (allowed.prefix === undefined) list.addAddress(allowed.address, allowed.family);
    else list.addSubnet(allowed.address, allowed.prefix, allowed.family);
  }
  return list;
}

/** Refused before any byte was sent: not worth retrying. */
export class OutboundRefused extends Error {
  override name = "OutboundRefused";
}

export interface OutboundOptions {
  /** IPs, CIDR ranges or host names that may be reached although internal (a bridge on the LAN, tests). */
  allow: string[];
  /** Plain http is refused unless allowed (tests, a bridge on this machine). */
  allowHttp: boolean;
}

export interface OutboundResponse {
  status: number;
  /** The answer's first 64 KB: providers say in it whether they took the message. */
  body: string;
}

const MAX_ANSWER_BYTES = 65_536;

/**
 * The one way the gateway calls out (every notification channel). https only by
 * default; a target on this machine or its private networks (loopback, private, link-local,
 * multicast, carrier NAT) is refused, checked on the address actually connected to, after DNS,
 * so a name that resolves inside is refused too; redirects are never followed. An operator
 * allows internal targets by address, range or host name.
 */
export class OutboundGuard {
  private readonly allowedAddresses: BlockList;
  private readonly allowedHosts = new Set<string>();

  constructor(private readonly options: OutboundOptions) {
    for (const entry of options.allow) {
      const allowed = parseAllowEntry(entry);
      if (!allowed)
        throw new Error(`OUTBOUND_ALLOW: '${entry}' is not an IP address, a CIDR range or a host name`);
      if ("host" in allowed) this.allowedHosts.add(allowed.host);
    }
    this.allowedAddresses = addressesOf(options.allow);
  }

  /** Why this URL may not be called, judged without DNS; undefined when it may be tried. */
  refusal(url: string): string | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return "is not a URL";
    }
    if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && this.options.allowHttp))
      return this.options.allowHttp ? "must be an http(s) URL" : "must be an https URL";
    if (parsed.username || parsed.password) return "must not carry a user name or password";
    const host = parsed.hostname.replace(/^\[|\]$/g, "");
    return isIP(host) ? this.addressRefusal(host) : undefined;
  }

  /** POSTs `body`; resolves with the status, or rejects (OutboundRefused when never sent). */
  post(
    url: string,
    headers: Record<string, string>,
    body: string | Buffer,
    timeoutMs: number,
  ): Promise<OutboundResponse> {
    const refused = this.refusal(url);
    if (refused) return Promise.reject(new OutboundRefused(`${url.split("?")[0]} ${refused}`));
    const target = new URL(url);
    const hostAllowed = this.allowedHosts.has(target.hostname.toLowerCase());
    const request = target.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        target,
        {
          method: "POST",
          headers: { ...headers, "content-length": Buffer.byteLength(body) },
          signal: AbortSignal.timeout(timeoutMs),
          lookup: hostAllowed ? undefined : this.checkedLookup,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            if (size < MAX_ANSWER_BYTES) chunks.push(chunk);
            size += chunk.length;
          });
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString("utf8"),
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  private addressRefusal(address: string): string | undefined {
    const family: "ipv4" | "ipv6" = isIP(address) === 6 ? "ipv6" : "ipv4";
    // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as what it is.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    const [plain, plainFamily] = mapped ? [mapped, "ipv4" as const] : [address, family];
    if (this.allowedAddresses.check(plain, plainFamily)) return undefined;
    if (internal.check(plain, plainFamily))
      return `reaches ${plain}, an address on this machine or its private networks (allow it with OUTBOUND_ALLOW)`;
    return undefined;
  }

  /** DNS as usual, then every address checked: a public name that resolves inside is refused. */
  private readonly checkedLookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, "", 0);
      for (const a of addresses) {
        const refused = this.addressRefusal(a.address);
        if (refused) return callback(new OutboundRefused(`${hostname} ${refused}`), "", 0);
      }
      const first = addresses[0];
      if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      else callback(null, first?.address ?? "", first?.family ?? 4);
    });
  };
}
