import type { FastifyPluginAsync } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Viewer } from "../auth/index.ts";
import { Errors } from "../errors.ts";
import { alertKindName } from "../notify/messages.ts";
import { alertsCsv, type Month, monthlyReport, monthOf } from "../reports/monthly.ts";
import { managers, viewerOf } from "./access.ts";
import type { ApiDeps } from "./index.ts";

const query = z.object({
  month: z
    .string()
    .regex(/^\d{4}-(0[1-9]|1[0-2])$/, "month is YYYY-MM, e.g. 2026-11")
    .optional(),
  community: z.string().min(1).max(64).optional(),
  lang: z.enum(["zh-CN", "en"]).default("zh-CN"),
});

/** A spreadsheet's columns in its reader's language. */
const csvHeader: Record<"zh-CN" | "en", string[]> = {
  "zh-CN": [
    "告警编号",
    "类型",
    "对象",
    "设备",
    "发生时间",
    "应答用时(秒)",
    "处置用时(秒)",
    "最高升级级别",
    "状态",
    "关闭原因",
  ],
  en: [
    "alert",
    "kind",
    "person",
    "device",
    "opened",
    "answered after (s)",
    "resolved after (s)",
    "highest level",
    "state",
    "close reason",
  ],
};

/**
 * Monthly response figures per community, for staff (their community or grid) and admins: JSON
 * for the page, CSV (one row per alert) for a spreadsheet.
 */
export const reportRoutes: FastifyPluginAsync<ApiDeps> = async (
  fastify,
  { store, clock, reportTimeZone },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  /** The month asked for (this month by default) and the alerts about people in the viewer's part of the community. */
  const gather = async (viewer: Viewer, q: z.infer<typeof query>) => {
    const communities = await store.registry.listCommunities();
    const communityId =
      q.community ?? viewer.area?.communityId ?? (communities.length === 1 ? communities[0]?.id : undefined);
    if (!communityId) throw Errors.invalid("name the community (?community=…): there are several");
    const community = communities.find((c) => c.id === communityId);
    if (!community) throw Errors.notFound("community", communityId);
    if (viewer.area && viewer.area.communityId !== communityId)
      throw Errors.forbidden(`community '${communityId}' is outside your area`);
    const gridId = viewer.area?.gridId ?? undefined;
    const subjectIds = (await store.registry.listPeople({ communityId, gridId }))
      .map((p) => p.id)
      .filter((id) => !viewer.people || viewer.people.has(id));
    const now = clock.now();
    const month: Month = monthOf(q.month ?? thisMonth(now, reportTimeZone), reportTimeZone);
    const alerts = await store.alerts.forReport({ from: month.from, to: month.to, subjectIds });
    return { community, gridId: gridId ?? null, month, alerts, now };
  };

  app.get(
    "/api/reports/monthly",
    { config: { roles: managers }, schema: { tags: ["reports"], querystring: query } },
    async (req) => {
      const { community, gridId, month, alerts, now } = await gather(viewerOf(req), req.query);
      return { community, gridId, ...monthlyReport(alerts, month, now) };
    },
  );

  app.get(
    "/api/reports/monthly.csv",
    { config: { roles: managers }, schema: { tags: ["reports"], querystring: query } },
    async (req, reply) => {
      const { community, month, alerts } = await gather(viewerOf(req), req.query);
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="alerts-${community.id}-${month.month}.csv"`)
        .send(alertsCsv(alerts, month, csvHeader[req.query.lang], (k) => alertKindName(k, req.query.lang)));
    },
  );
};

/** `YYYY-MM` of the month `now` falls in on the wall clock of `timeZone`. */
function thisMonth(now: number, timeZone: string): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit" })
    .format(now)
    .slice(0, 7);
}
