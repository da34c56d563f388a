import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { hashSecret, newDeviceSecret } from "./broker/secrets.ts";
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

export interface DemoSize {
  buttons: number;
  tags: number;
}

/**
 * Seeds a demo district in Chengguan, Lhasa: two communities with two grids each, a doctor and a
 * grid worker per grid, staff per community, residents with family, call buttons and locator tags.
 * Writes the devices' credentials to `<dataDir>/demo-devices.json` for the simulator (the database
 * keeps only hashes).
 */
export async function seedDemo(store: Store, dataDir: string, size: DemoSize, now: number): Promise<string> {
  const { registry } = store;
  const people: Person[] = [];
  const add = async (p: Omit<Person, "phone" | "address" | "contacts"> & Partial<Person>) => {
    const person = await registry.createPerson({ phone: null, address: null, contacts: [], ...p });
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

  const credentials: { id: string; kind: "call-button" | "locator-tag"; secret: string; ownerId: string }[] =
    [];
  const total = size.buttons + size.tags;
  for (let i = 0; i < total; i++) {
    const grid = grids[i % grids.length];
    if (!grid) break;
    const isTag = i >= size.buttons;
    const residentId = `resident-${String(i + 1).padStart(4, "0")}`;
    await add({
      id: residentId,
      name: name(i, i * 7 + 3),
      role: "resident",
      communityId: grid.communityId,
      gridId: grid.id,
      address: `${grid.id.replace("-g", " grid ")}, building ${(i % 9) + 1}`,
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
    const kind = isTag ? "locator-tag" : "call-button";
    const id = isTag
      ? `tag-${String(i - size.buttons + 1).padStart(4, "0")}`
      : `btn-${String(i + 1).padStart(4, "0")}`;
    const secret = newDeviceSecret();
    await registry.createDevice({ id, kind, ownerId: residentId, createdAt: now }, await hashSecret(secret));
    credentials.push({ id, kind, secret, ownerId: residentId });
  }
  const file = join(dataDir, "demo-devices.json");
  writeFileSync(file, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  return file;
}
