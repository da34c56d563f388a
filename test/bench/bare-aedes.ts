/**
 * aedes alone, the benchmark's second baseline: the MQTT broker library the gateway is built on,
 * with the gateway's version and socket options but no authentication, rules or store. Its cost
 * per connect and per message is about the least the gateway's can be. Listens on 127.0.0.1:<argv[2]>; driven over IPC like the load workers:
 *
 *   child  -> { event: "listening" }
 *   parent -> { cmd: "count" }        child -> { event: "count", received }   PUBLISH packets from clients
 */
import { createServer } from "node:net";
import { Aedes } from "aedes";

const aedes = new Aedes();
await aedes.listen();
let received = 0;
aedes.on("publish", (_packet, client) => {
  if (client) received++;
});
const server = createServer((socket) => {
  socket.setNoDelay(true);
  aedes.handle(socket);
});
server.listen(Number(process.argv[2]), "127.0.0.1", () => process.send?.({ event: "listening" }));
process.on("message", (m: { cmd: string }) => {
  if (m.cmd === "count") process.send?.({ event: "count", received });
});
// Never left behind on the measured core when the benchmark dies.
process.on("disconnect", () => process.exit(0));
