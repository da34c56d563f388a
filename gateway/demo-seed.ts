import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceCredentials } from "../device-sim/device.ts";
import { behaviours } from "../device-sim/walks.ts";
import { type DeviceSecrets, newDeviceSecret } from "./broker/secrets.ts";
import type { Geofence } from "./rules/geofence.ts";
import type { Person, Store } from "./store/types.ts";

/** Tibetan given names as written in Chinese and in English. */
const NAMES: [string, string][] = [
  ["顿珠", "Dondrub"],
  ["次仁", "Tsering"],
  ["卓玛", "Drolma"],
  ["扎西", "Tashi"],
  ["拉姆", "Lhamo"],
  ["多吉", "Dorje"],
  ["央金", "Yangchen"],
  ["格桑", "Kelsang"],
  ["平措", "Phuntsok"],
  ["索朗", "Sonam"],
  ["德吉", "Dekyi"],
  ["旺堆", "Wangdue"],
  ["尼玛", "Nyima"],
  ["白玛", "Pema"],
  ["达瓦", "Dawa"],
  ["普布", "Phurbu"],
  ["边巴", "Penpa"],
  ["曲珍", "Chodron"],
  ["洛桑", "Lobsang"],
  ["琼达", "Chungda"],
];
const name = (i: number, j: number) => {
  const a = NAMES[i % NAMES.length] ?? ["", ""];
  const b = NAMES[j % NAMES.length] ?? ["", ""];
  return `${a[0]}${b[0]} ${a[1]} ${b[1]}`;
};

const COMMUNITIES = [
  {
    id: "chongsaikang",
    name: "冲赛康社区 Chongsaikang Community",
    grids: ["冲赛康一网格 Grid 1", "冲赛康二网格 Grid 2"],
  },
  { id: "lugu", name: "鲁固社区 Lugu Community", grids: ["鲁固一网格 Grid 1", "鲁固二网格 Grid 2"] },
];

/** Safe zones the demo's locator tags belong to; tags are shared out among them. */
const ZONES = [
  {
    id: "zone-special-school",
    name: "拉萨市特殊教育学校 Special Education School (school hours)",
    home: { lat: 29.648, lon: 91.125 },
    schedule: { timeZone: "Asia/Shanghai", windows: [{ days: [1, 2, 3, 4, 5], from: "08:00", to: "17:00" }] },
  },
  {
    id: "zone-chongsaikang",
    name: "冲赛康小区 Chongsaikang compound",
    home: { lat: 29.6545, lon: 91.1345 },
    schedule: null,
  },
  {
    id: "zone-lugu-home",
    name: "鲁固养老院 Lugu elderly home",
    home: { lat: 29.6495, lon: 91.14 },
    schedule: null,
  },
];
const ZONE_RADIUS_M = 250;

export interface DemoSize {
  buttons: number;
  tags: number;
  /** Off-the-shelf watches (3G / SeTracker protocol): child watches and SOS pendants by turns. */
  watches?: number;
}

/**
 * Seeds a demo district in Chengguan, Lhasa: two communities with two grids each, a doctor and a
 * grid worker per grid, staff per community, residents with family, call buttons and locator tags.
 * Writes the devices' credentials to `<dataDir>/demo-devices.json` for the simulator (the database
 * keeps only hashes).
 */
export async function seedDemo(
  { store, deviceSecrets }: { store: Store; deviceSecrets: DeviceSecrets },
  dataDir: string,
  size: DemoSize,
  now: number,
): Promise<string> {
  const { registry } = store;
  const people: Person[] = [];
  const add = async (p: Omit<Person, "phone" | "address" | "contacts" | "locale"> & Partial<Person>) => {
    const person = await registry.createPerson({
      phone: null,
      address: null,
      locale: "zh-CN",
      contacts: [],
      ...p,
    });
    people.push(person);
    return person;
  };
  const grids: { id: string; communityId: string; doctor: string }[] = [];
  for (const [ci, c] of COMMUNITIES.entries()) {
    await registry.createCommunity({ id: c.id, name: c.name });
    await add({
      id: `${c.id}-staff`,
      name: `${name(ci + 3, ci + 7)} (社区工作人员 staff)`,
      role: "staff",
      communityId: c.id,
      gridId: null,
    });
    for (const [gi, gridName] of c.grids.entries()) {
      const gridId = `${c.id}-g${gi + 1}`;
      await registry.createGrid({ id: gridId, communityId: c.id, name: gridName });
      const doctor = await add({
        id: `${gridId}-doctor`,
        name: `${name(ci * 2 + gi + 1, gi + 5)} 医生 Dr`,
        role: "doctor",
        communityId: c.id,
        gridId,
      });
      await add({
        id: `${gridId}-worker`,
        name: `${name(gi + 9, ci + 2)} (网格员 grid worker)`,
        role: "grid-worker",
        communityId: c.id,
        gridId,
      });
      grids.push({ id: gridId, communityId: c.id, doctor: doctor.id });
    }
  }

  const credentials: (DeviceCredentials & { ownerId: string })[] = [];
  const zoneMembers = new Map<string, string[]>();
  const total = size.buttons + size.tags + (size.watches ?? 0);
  for (let i = 0; i < total; i++) {
    const grid = grids[i % grids.length];
    if (!grid) break;
    const watch = i - size.buttons - size.tags;
    const isTag = i >= size.buttons && watch < 0;
    const residentId = `resident-${String(i + 1).padStart(4, "0")}`;
    await add({
      id: residentId,
      name: name(i, i * 7 + 3),
      role: "resident",
      // Locator tags and the watches' child watches are worn by children; call buttons and pendants by elders.
      category: isTag || (watch >= 0 && watch % 2 === 0) ? "child" : "elderly",
      communityId: grid.communityId,
      gridId: grid.id,
      // As a responder reads it on the card: district, community, building, unit, flat.
      address: `拉萨市城关区${grid.communityId === "lugu" ? "鲁固" : "冲赛康"}社区${(i % 9) + 1}号楼${(i % 3) + 1}单元${101 + (i % 6)}室`,
    });
    const familyId = `family-${String(i + 1).padStart(4, "0")}`;
    await add({
      id: familyId,
      name: name(i + 5, i * 3 + 1),
      role: "family",
      communityId: grid.communityId,
      gridId: null,
      phone: `+86 139 0891 ${String(1000 + i)}`,
    });
    await registry.createAssignment({ residentId, personId: grid.doctor, relation: "doctor" });
    await registry.createAssignment({ residentId, personId: familyId, relation: "family" });
    if (watch >= 0) {
      // A watch's id is the one printed on it (10 digits here); it has no secret to give.
      const id = `88000${String(watch + 1).padStart(5, "0")}`;
      const kind = watch % 2 === 0 ? "locator-tag" : "call-button";
      await registry.createDevice(
        { id, kind, ownerId: residentId, protocol: "watch", createdAt: now },
        deviceSecrets.hash(newDeviceSecret()),
      );
      const home = ZONES[watch % ZONES.length]?.home;
      credentials.push({
        id,
        kind,
        protocol: "watch",
        secret: "",
        ownerId: residentId,
        home,
        zoneRadiusM: ZONE_RADIUS_M,
      });
      continue;
    }
    const kind = isTag ? "locator-tag" : "call-button";
    const id = isTag
      ? `tag-${String(i - size.buttons + 1).padStart(4, "0")}`
      : `btn-${String(i + 1).padStart(4, "0")}`;
    const secret = newDeviceSecret();
    await registry.createDevice(
      { id, kind, ownerId: residentId, createdAt: now },
      deviceSecrets.hash(secret),
    );
    if (!isTag) {
      credentials.push({ id, kind, secret, ownerId: residentId });
      continue;
    }
    const t = i - size.buttons;
    const zone = ZONES[t % ZONES.length] ?? ZONES[0];
    if (!zone) continue;
    zoneMembers.set(zone.id, [...(zoneMembers.get(zone.id) ?? []), id]);
    credentials.push({
      id,
      kind,
      secret,
      ownerId: residentId,
      home: zone.home,
      zoneRadiusM: ZONE_RADIUS_M,
      behaviour: behaviours[t % behaviours.length],
      // Every fifth tag starts nearly flat, so low-battery alerts show up in the demo.
      battery: t % 5 === 4 ? 21 : 70 + (t % 3) * 10,
    });
  }
  for (const zone of ZONES) {
    const deviceIds = zoneMembers.get(zone.id);
    if (!deviceIds) continue;
    const fence: Geofence = {
      id: zone.id,
      name: zone.name,
      shape: { type: "Circle", center: [zone.home.lon, zone.home.lat], radiusM: ZONE_RADIUS_M },
      schedule: zone.schedule,
      deviceIds,
    };
    await store.geofences.create(fence);
  }
  const file = join(dataDir, "demo-devices.json");
  writeFileSync(file, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  return file;
}
