export * from "./alarm.ts";
export * from "./frame.ts";
export * from "./geolocation.ts";
export * from "./listener.ts";
export * from "./message.ts";
export * from "./reports.ts";
